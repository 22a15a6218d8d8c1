// The sparse TopK trainer beyond the shared reference test (trainers_test.ts): at a size where
// latents fire on many tokens it agrees with the dense path, its gradients match central finite
// differences of the float64 loss, and two runs from the same state are bit-identical (the
// latent → entries index is sorted, so no sum depends on atomic order).
import { assertEquals, assertLess } from "@std/assert";
import { readF32 } from "../../gpu/buffers.ts";
import { DenseGpuTrainer } from "../../sae/dense_trainer.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import type { Sae } from "../../sae/types.ts";
import { poisonAll, testGpu } from "../util/gpu.ts";
import { freshRng, relError } from "../util/rand.ts";
import { centralDifferences } from "../util/fd.ts";

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;
const OPTS = { weightDecay: 0.01, gradClip: 1, decoderConstraint: true };

function sae(rng: ReturnType<typeof freshRng>, d: number, m: number, k: number): Sae {
  return {
    cfg: { kind: "topk", dIn: d, dSae: m, k },
    weights: {
      W_enc: rng.normals(d * m, 0.3),
      b_enc: rng.normals(m, 0.1),
      W_dec: rng.normals(m * d, 0.3),
      b_dec: rng.normals(d, 0.1),
    },
  };
}

Deno.test("sparse TopK trainer agrees with the dense path over two steps at a wider size", async () => {
  const gpu = await testGpu();
  const rng = freshRng("topk-vs-dense");
  const d = 24 + rng.int(20), m = 300 + rng.int(200), k = 8 + rng.int(40), n = 150 + rng.int(100);
  const s = sae(rng, d, m, k);
  const a = new TopKGpuTrainer(gpu, s, OPTS), b = new DenseGpuTrainer(gpu, s, OPTS);
  try {
    for (let step = 0; step < 2; step++) {
      const x = rng.normals(n * d), g = rng.normals(n * d, 0.01);
      const fa = await a.forward(x, n), fb = await b.forward(x, n);
      assertLess(relError(fa.xhat, fb.xhat), 1e-5, "x̂");
      assertEquals(fa.l0, fb.l0);
      poisonAll(gpu.device, a.grads);
      const ga = await a.backwardAndStep({ wMse: 0.5, gExt: g, wExt: 0.3, lr: 1e-3 });
      poisonAll(gpu.device, b.grads);
      const gb = await b.backwardAndStep({ wMse: 0.5, gExt: g, wExt: 0.3, lr: 1e-3 });
      assertLess(Math.abs(ga.gradNorm - gb.gradNorm) / gb.gradNorm, 1e-4);
      assertEquals(ga.dead, gb.dead);
      for (const name of NAMES) {
        const size = s.weights[name].length;
        assertLess(
          relError(
            await readF32(gpu.device, a.grads[name], size),
            await readF32(gpu.device, b.grads[name], size),
          ),
          1e-4,
          `∂${name} at step ${step}`,
        );
      }
    }
  } finally {
    a.release();
    b.release();
  }
});

Deno.test("sparse TopK trainer: gradients match finite differences of the float64 loss", async () => {
  const gpu = await testGpu();
  const rng = freshRng("topk-fd");
  const d = 6, m = 10, k = 3, n = 7, wMse = 0.7, wExt = 0.4;
  const s = sae(rng, d, m, k);
  const x = rng.normals(n * d), g = rng.normals(n * d);
  const loss = (w: Record<string, Float64Array>) => {
    let mse = 0, ext = 0;
    for (let t = 0; t < n; t++) {
      const pre = new Float64Array(m);
      for (let j = 0; j < m; j++) {
        let v = w.b_enc[j];
        for (let i = 0; i < d; i++) v += (x[t * d + i] - w.b_dec[i]) * w.W_enc[i * m + j];
        pre[j] = v;
      }
      const top = [...pre.keys()].sort((p, q) => pre[q] - pre[p] || p - q).slice(0, k);
      for (let i = 0; i < d; i++) {
        let v = w.b_dec[i];
        for (const j of top) v += Math.max(pre[j], 0) * w.W_dec[j * d + i];
        mse += (v - x[t * d + i]) ** 2;
        ext += g[t * d + i] * v;
      }
    }
    return wMse * mse / (n * d) + wExt * ext;
  };
  const trainer = new TopKGpuTrainer(gpu, s, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
  });
  try {
    await trainer.forward(x, n);
    poisonAll(gpu.device, trainer.grads);
    await trainer.backwardAndStep({ wMse, gExt: g, wExt, lr: 0 });
    const w64: Record<string, Float64Array> = {};
    for (const name of NAMES) w64[name] = Float64Array.from(s.weights[name]);
    for (const name of NAMES) {
      const got = await readF32(gpu.device, trainer.grads[name], w64[name].length);
      const fd = centralDifferences(w64[name], () => loss(w64));
      assertLess(relError(got, fd), 1e-4, `∂${name}`);
    }
  } finally {
    trainer.release();
  }
});

Deno.test("sparse TopK trainer: two runs from the same state are bit-identical", async () => {
  const gpu = await testGpu();
  const rng = freshRng("topk-determinism");
  const d = 32, m = 256, k = 16, n = 400;
  const s = sae(rng, d, m, k);
  const xs = [rng.normals(n * d), rng.normals(n * d)];
  const run = async () => {
    const t = new TopKGpuTrainer(gpu, s, OPTS);
    try {
      for (const x of xs) {
        await t.forward(x, n);
        await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-2 });
      }
      return await t.toSae();
    } finally {
      t.release();
    }
  };
  const [r1, r2] = [await run(), await run()];
  for (const name of NAMES) assertEquals(r1.weights[name], r2.weights[name], name);
});

Deno.test("auxk: with dead latents, gradients match finite differences of MSE + coef·auxk loss", async () => {
  const gpu = await testGpu();
  const rng = freshRng("topk-auxk");
  const d = 5, m = 16, k = 2, n = 5, auxK = 4, coef = 0.5, wMse = 0.8;
  const s = sae(rng, d, m, k);
  const w0: Record<string, Float64Array> = {};
  for (const name of NAMES) w0[name] = Float64Array.from(s.weights[name]);
  const preOf = (w: Record<string, Float64Array>, x: Float32Array, t: number) =>
    Float64Array.from({ length: m }, (_, j) => {
      let v = w.b_enc[j];
      for (let i = 0; i < d; i++) v += (x[t * d + i] - w.b_dec[i]) * w.W_enc[i * m + j];
      return v;
    });
  const top = (pre: Float64Array, kk: number, allowed: (j: number) => boolean) =>
    [...pre.keys()].filter(allowed).sort((p, q) => pre[q] - pre[p] || p - q).slice(0, kk);
  const decode = (
    w: Record<string, Float64Array>,
    pre: Float64Array,
    js: number[],
    bias: boolean,
  ) =>
    Float64Array.from({ length: d }, (_, i) => {
      let v = bias ? w.b_dec[i] : 0;
      for (const j of js) v += Math.max(pre[j], 0) * w.W_dec[j * d + i];
      return v;
    });
  // Step 1 (lr 0) marks every latent that did not fire on x0 as dead (window of one token).
  const x0 = rng.normals(n * d), x = rng.normals(n * d);
  const fired = new Set<number>();
  for (let t = 0; t < n; t++) {
    const pre = preOf(w0, x0, t);
    for (const j of top(pre, k, () => true)) if (pre[j] > 0) fired.add(j);
  }
  const dead = (j: number) => !fired.has(j);
  // The residual e = x − x̂ is detached: fixed at the weights of the step.
  const e0 = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    const pre = preOf(w0, x, t);
    const xhat = decode(w0, pre, top(pre, k, () => true), true);
    for (let i = 0; i < d; i++) e0[t * d + i] = x[t * d + i] - xhat[i];
  }
  let total = 0;
  for (let i = 0; i < d; i++) {
    let mu = 0;
    for (let t = 0; t < n; t++) mu += e0[t * d + i] / n;
    for (let t = 0; t < n; t++) total += (e0[t * d + i] - mu) ** 2;
  }
  const parts = (w: Record<string, Float64Array>) => {
    let mse = 0, aux = 0;
    for (let t = 0; t < n; t++) {
      const pre = preOf(w, x, t);
      const xhat = decode(w, pre, top(pre, k, () => true), true);
      const ehat = decode(w, pre, top(pre, auxK, dead), false);
      for (let i = 0; i < d; i++) {
        mse += (xhat[i] - x[t * d + i]) ** 2;
        aux += (ehat[i] - e0[t * d + i]) ** 2;
      }
    }
    return { mse: mse / (n * d), aux: coef * aux / total };
  };
  const loss = (w: Record<string, Float64Array>) => {
    const p = parts(w);
    return wMse * p.mse + p.aux;
  };
  const trainer = new TopKGpuTrainer(gpu, s, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
    deadWindowTokens: 1,
    auxK,
    auxCoef: coef,
  });
  try {
    await trainer.forward(x0, n);
    const first = await trainer.backwardAndStep({ wMse, gExt: null, wExt: 0, lr: 0 });
    assertEquals(first.dead, m - fired.size, "dead latents after the first batch");
    await trainer.forward(x, n);
    poisonAll(gpu.device, trainer.grads);
    const second = await trainer.backwardAndStep({ wMse, gExt: null, wExt: 0, lr: 0 });
    assertLess(Math.abs(second.aux - parts(w0).aux) / parts(w0).aux, 1e-4, "auxk loss");
    for (const name of NAMES) {
      const got = await readF32(gpu.device, trainer.grads[name], w0[name].length);
      const fd = centralDifferences(w0[name], () => loss(w0));
      assertLess(relError(got, fd), 1e-4, `∂${name} with auxk`);
    }
  } finally {
    trainer.release();
  }
});

Deno.test("sparse TopK trainer: a batch encoded in chunks of rows equals the one-shot step, auxk included", async () => {
  const gpu = await testGpu();
  const rng = freshRng("topk-chunks");
  const d = 16, m = 96, k = 4, n = 37 + rng.int(20);
  const s = sae(rng, d, m, k);
  const xs = [rng.normals(n * d), rng.normals(n * d), rng.normals(n * d)];
  const run = async (maxChunkRows?: number) => {
    // A one-token dead window: latents that miss a batch are dead on the next, so auxk runs.
    const t = new TopKGpuTrainer(gpu, s, { ...OPTS, deadWindowTokens: 1, auxK: 8, maxChunkRows });
    try {
      const aux: number[] = [];
      for (const x of xs) {
        await t.forward(x, n);
        aux.push((await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-2 })).aux);
      }
      return { sae: await t.toSae(), aux };
    } finally {
      t.release();
    }
  };
  const whole = await run(), chunked = await run(7);
  assertLess(0, whole.aux[1], "auxk was active");
  assertEquals(chunked.aux, whole.aux);
  for (const name of NAMES) assertEquals(chunked.sae.weights[name], whole.sae.weights[name], name);
});

Deno.test("sparse TopK trainer: the gradient to its input matches finite differences", async () => {
  const gpu = await testGpu();
  const rng = freshRng("topk-input-grad");
  const d = 7, m = 15, k = 4, n = 6;
  const s = sae(rng, d, m, k);
  const x = rng.normals(n * d), g = rng.normals(n * d);
  const w = Object.fromEntries(NAMES.map((k2) => [k2, Float64Array.from(s.weights[k2])]));
  const x64 = Float64Array.from(x);
  const loss = () => {
    let total = 0;
    for (let t = 0; t < n; t++) {
      const pre = Float64Array.from({ length: m }, (_, j) => {
        let v = w.b_enc[j];
        for (let i = 0; i < d; i++) v += (x64[t * d + i] - w.b_dec[i]) * w.W_enc[i * m + j];
        return v;
      });
      const top = [...pre.keys()].sort((p, q) => pre[q] - pre[p] || p - q).slice(0, k);
      for (let i = 0; i < d; i++) {
        let v = w.b_dec[i];
        for (const j of top) v += Math.max(pre[j], 0) * w.W_dec[j * d + i];
        total += g[t * d + i] * v;
      }
    }
    return total;
  };
  const t = new TopKGpuTrainer(gpu, s, OPTS);
  try {
    await t.forward(x, n);
    assertLess(relError(await t.inputGradient(g), centralDifferences(x64, loss)), 1e-4);
  } finally {
    t.release();
  }
});
