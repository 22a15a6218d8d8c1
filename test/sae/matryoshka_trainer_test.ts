// The Matryoshka BatchTopK trainer against a float64 reference of its whole loss: the batch-wide
// selection, every prefix's reconstruction, the gradients of wMse·Σ_g MSE(x̂_g) + wExt·⟨gExt, x̂_G⟩
// against central finite differences, the running threshold and inference through it.
import { assertEquals, assertLess, assertThrows } from "@std/assert";
import { readF32 } from "../../gpu/buffers.ts";
import { MatryoshkaGpuTrainer } from "../../sae/matryoshka_trainer.ts";
import type { Sae } from "../../sae/types.ts";
import { poisonAll, testGpu } from "../util/gpu.ts";
import { centralDifferences } from "../util/fd.ts";
import { freshRng, relError } from "../util/rand.ts";
import { forwardRef, randomSae } from "./ref.ts";
import { batchTopk, decodeKept, pre64, to64, type W } from "./ref64.ts";

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;

function randomMatryoshka(seedLabel: string) {
  const rng = freshRng(seedLabel);
  const d = 5 + rng.int(6), m = 16 + rng.int(24), k = 2 + rng.int(3), n = 4 + rng.int(7);
  const cuts = new Set<number>();
  while (cuts.size < 2 + rng.int(2)) cuts.add(1 + rng.int(m - 1));
  const widths = [...[...cuts].sort((a, b) => a - b), m];
  const sae = randomSae(rng, { kind: "batchtopk", dIn: d, dSae: m, k });
  sae.cfg = { kind: "matryoshka_batchtopk", dIn: d, dSae: m, k, matryoshkaWidths: widths };
  sae.weights.threshold = Float32Array.of(-1);
  return { rng, d, m, k, n, widths, sae };
}

Deno.test("matryoshka_batchtopk: prefixes, gradients of the summed prefix MSE + ⟨gExt, x̂⟩ vs FD", async () => {
  const gpu = await testGpu();
  const { rng, d, m, k, n, widths, sae } = randomMatryoshka("matryoshka-trainer");
  const x = rng.normals(n * d), g = rng.normals(n * d), wMse = 0.7, wExt = 0.3;
  const w0 = to64(sae);
  const { keep, smallest } = batchTopk(w0, x, { n, d, m, k });
  /** x̂ of every prefix with the selection fixed at w0. */
  const prefixes = (w: W) => widths.map((width) => decodeKept(w, x, keep, { n, d, m }, width));
  const loss = (w: W) => {
    const xs = prefixes(w);
    let mse = 0, ext = 0;
    for (const xhat of xs) for (let e = 0; e < n * d; e++) mse += (xhat[e] - x[e]) ** 2;
    for (let e = 0; e < n * d; e++) ext += g[e] * xs.at(-1)![e];
    return wMse * mse / (n * d) + wExt * ext;
  };
  const trainer = new MatryoshkaGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
  });
  try {
    const f = await trainer.forward(x, n);
    const want = prefixes(w0);
    assertLess(relError(f.xhat, want.at(-1)!), 1e-5, "x̂ of the batch selection");
    assertEquals(f.l0, keep.size / n);
    const got = await trainer.prefixReconstructions();
    widths.forEach((w, q) => assertLess(relError(got[q], want[q]), 1e-5, `prefix ${w}`));
    poisonAll(gpu.device, trainer.grads);
    await trainer.backwardAndStep({ wMse, gExt: g, wExt, lr: 0 });
    for (const name of NAMES) {
      const grad = await readF32(gpu.device, trainer.grads[name], w0[name].length);
      const fd = centralDifferences(w0[name], () => loss(w0));
      assertLess(relError(grad, fd), 1e-4, `∂${name} (widths [${widths}])`);
    }
    // Without gExt the external term drops out (its buffer holds the last one: it must be unread).
    poisonAll(gpu.device, trainer.grads);
    await trainer.forward(x, n);
    await trainer.backwardAndStep({ wMse, gExt: null, wExt, lr: 0 });
    const mseOnly = (w: W) => {
      let s = 0;
      for (const xhat of prefixes(w)) for (let e = 0; e < n * d; e++) s += (xhat[e] - x[e]) ** 2;
      return wMse * s / (n * d);
    };
    const gDec = await readF32(gpu.device, trainer.grads.W_dec, m * d);
    assertLess(relError(gDec, centralDifferences(w0.W_dec, () => mseOnly(w0))), 1e-4, "MSE only");
    // The first batch set the threshold to its smallest selected activation; inference cuts there.
    const saved = await trainer.toSae();
    assertLess(Math.abs(saved.weights.threshold![0] - smallest) / smallest, 1e-5, "threshold");
    assertEquals(saved.cfg.matryoshkaWidths, widths);
    const x2 = rng.normals(n * d);
    const inf = await trainer.forward(x2, n, true);
    const asBatchTopk: Sae = { cfg: { ...saved.cfg, kind: "batchtopk" }, weights: saved.weights };
    assertLess(relError(inf.xhat, forwardRef(asBatchTopk, x2).xHat), 1e-5, "x̂ at inference");
  } finally {
    trainer.release();
  }
});

Deno.test("matryoshka_batchtopk: auxk on dead latents, gradients vs FD with the residual detached", async () => {
  const gpu = await testGpu();
  const { rng, d, m, k, n, widths, sae } = randomMatryoshka("matryoshka-auxk");
  const x = rng.normals(n * d), g = rng.normals(n * d), wMse = 0.8, wExt = 0.25;
  const auxK = 1 + rng.int(4), auxCoef = 0.5;
  const w0 = to64(sae);
  const { keep } = batchTopk(w0, x, { n, d, m, k });
  // With a window of one batch, every latent the first batch did not select is dead after it.
  const dead = new Set([...Array(m).keys()].filter((j) => ![...keep].some((e) => e % m === j)));
  const auxSel = new Set<number>();
  for (let t = 0; t < n; t++) {
    const pre = pre64(w0, x, t, d, m);
    [...dead].sort((a, b) => pre[b] - pre[a] || a - b).slice(0, auxK).forEach((j) =>
      auxSel.add(t * m + j)
    );
  }
  const decode = (w: W, sel: Set<number>, width: number, bias: boolean) => {
    const out = new Float64Array(n * d);
    for (let t = 0; t < n; t++) {
      const pre = pre64(w, x, t, d, m);
      for (let i = 0; i < d; i++) {
        let v = bias ? w.b_dec[i] : 0;
        for (let j = 0; j < width; j++) {
          if (sel.has(t * m + j) && pre[j] > 0) v += pre[j] * w.W_dec[j * d + i];
        }
        out[t * d + i] = v;
      }
    }
    return out;
  };
  const e0 = decode(w0, keep, m, true).map((v, q) => x[q] - v);
  const mean = new Float64Array(d);
  e0.forEach((v, q) => mean[q % d] += v / n);
  const total = e0.reduce((s, v, q) => s + (v - mean[q % d]) ** 2, 0);
  const auxLoss = (w: W) =>
    auxCoef * decode(w, auxSel, m, false).reduce((s, v, q) => s + (v - e0[q]) ** 2, 0) / total;
  const loss = (w: W) => {
    let mse = 0, ext = 0;
    for (const width of widths) {
      const xhat = decode(w, keep, width, true);
      for (let e = 0; e < n * d; e++) mse += (xhat[e] - x[e]) ** 2;
      if (width === m) { for (let e = 0; e < n * d; e++) ext += g[e] * xhat[e]; }
    }
    return wMse * mse / (n * d) + wExt * ext + auxLoss(w);
  };
  const trainer = new MatryoshkaGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
    deadWindowTokens: n,
    auxK,
    auxCoef,
  });
  try {
    await trainer.forward(x, n);
    const first = await trainer.backwardAndStep({ wMse, gExt: g, wExt, lr: 0 });
    assertEquals(first.aux, 0, "no dead latents before the first batch");
    assertEquals(first.dead, dead.size, "dead after one batch");
    await trainer.forward(x, n);
    poisonAll(gpu.device, trainer.grads);
    const { aux } = await trainer.backwardAndStep({ wMse, gExt: g, wExt, lr: 0 });
    assertLess(Math.abs(aux - auxLoss(w0)) / auxLoss(w0), 1e-4, "the auxk loss");
    for (const name of NAMES) {
      const grad = await readF32(gpu.device, trainer.grads[name], w0[name].length);
      const fd = centralDifferences(w0[name], () => loss(w0));
      assertLess(relError(grad, fd), 1e-4, `∂${name} with auxk (k_aux ${auxK})`);
    }
  } finally {
    trainer.release();
  }
});

Deno.test("matryoshka_batchtopk: bad widths, k or threshold are named errors", async () => {
  const gpu = await testGpu();
  const { sae } = randomMatryoshka("matryoshka-errors");
  const make = (s: Sae) =>
    new MatryoshkaGpuTrainer(gpu, s, { weightDecay: 0, gradClip: 1, decoderConstraint: false });
  const m = sae.cfg.dSae;
  const bad = (patch: Partial<Sae["cfg"]>, threshold = sae.weights.threshold) => ({
    cfg: { ...sae.cfg, ...patch },
    weights: { ...sae.weights, threshold },
  });
  assertThrows(() => make(bad({ matryoshkaWidths: [2, 2, m] })), RangeError, "strictly increasing");
  assertThrows(() => make(bad({ matryoshkaWidths: [2, m - 1] })), RangeError, `d_sae = ${m}`);
  assertThrows(() => make(bad({ matryoshkaWidths: undefined })), RangeError, "no matryoshkaWidths");
  assertThrows(() => make(bad({ k: m + 1 })), RangeError, "k must be in");
  assertThrows(() => make(bad({}, new Float32Array(m))), RangeError, "threshold must hold 1");
});
