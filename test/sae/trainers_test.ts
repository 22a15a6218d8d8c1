// The dense and sparse-TopK GPU trainers against float64 references: TopK gradients and weights after several
// AdamW steps vs test/util/reference_finetune.ts (with an external ∂KL/∂x̂ term, as the fine-tune
// sends), and the ReLU L1 gradients vs central finite differences of the float64 loss.
import { assertEquals, assertLess } from "@std/assert";
import { readF32 } from "../../gpu/buffers.ts";
import { DenseGpuTrainer } from "../../sae/dense_trainer.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import type { Sae } from "../../sae/types.ts";
import { poisonAll, testGpu } from "../util/gpu.ts";
import { freshRng, relError } from "../util/rand.ts";
import { referenceStep, type Sae64 } from "../util/reference_finetune.ts";
import { centralDifferences } from "../util/fd.ts";

function randomSae(
  rng: ReturnType<typeof freshRng>,
  kind: "topk" | "relu",
  d: number,
  m: number,
  k: number,
): Sae {
  return {
    cfg: { kind, dIn: d, dSae: m, k: kind === "topk" ? k : undefined },
    weights: {
      W_enc: rng.normals(d * m, 0.4),
      b_enc: rng.normals(m, 0.1),
      W_dec: rng.normals(m * d, 0.4),
      b_dec: rng.normals(d, 0.1),
    },
  };
}

const to64 = (s: Sae, k: number): Sae64 => ({
  dIn: s.cfg.dIn,
  dSae: s.cfg.dSae,
  k,
  W_enc: Float64Array.from(s.weights.W_enc),
  b_enc: Float64Array.from(s.weights.b_enc),
  W_dec: Float64Array.from(s.weights.W_dec),
  b_dec: Float64Array.from(s.weights.b_dec),
});

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;

/**
 * Three steps of `trainer` against referenceStep on fresh batches (with an external ∂KL/∂x̂ term):
 * x̂, MSE, L0, every gradient (poisoned before) and the weights after the three AdamW steps.
 */
async function checkThreeSteps(
  trainer: DenseGpuTrainer | TopKGpuTrainer,
  ref: Sae64,
  rng: ReturnType<typeof freshRng>,
  n: number,
  o: { clip: number; l1?: number },
): Promise<void> {
  const gpu = await testGpu();
  const d = ref.dIn, adam = { m: {}, v: {}, t: 0 }, none = new Float64Array(0);
  for (let step = 0; step < 3; step++) {
    const x = rng.normals(n * d), g = rng.normals(n * d, 0.01);
    const fwd = await trainer.forward(x, n);
    const r = referenceStep(ref, adam, Float64Array.from(x), none, none, n, 0, {
      objective: "mse",
      lr: 1e-3,
      weightDecay: 0.01,
      clip: o.clip,
      l1: o.l1,
      extraGrad: { g: Float64Array.from(g), wMse: 0.5, wExt: 0.7 },
    });
    assertLess(relError(fwd.xhat, r.xhat), 1e-5, `x̂ at step ${step}`);
    assertLess(Math.abs(fwd.mse - r.mse) / r.mse, 1e-5);
    let l0 = 0;
    for (const h of r.h) if (h > 0) l0++;
    assertLess(Math.abs(fwd.l0 - l0 / n), 1e-9);
    poisonAll(gpu.device, trainer.grads);
    const bw = await trainer.backwardAndStep({ wMse: 0.5, gExt: g, wExt: 0.7, lr: 1e-3, l1: o.l1 });
    assertLess(Math.abs(bw.gradNorm - r.gradNorm) / r.gradNorm, 1e-4, "gradient norm");
    for (const name of NAMES) {
      const got = await readF32(gpu.device, trainer.grads[name], ref[name].length);
      assertLess(relError(got, r.grads[name]), 1e-4, `∂${name} at step ${step}`);
    }
  }
  const after = await trainer.toSae();
  for (const name of NAMES) {
    assertLess(relError(after.weights[name], ref[name]), 1e-5, `${name} after 3 steps`);
  }
}

for (const Trainer of [DenseGpuTrainer, TopKGpuTrainer]) {
  Deno.test(`${Trainer.name}, TopK: gradients and three AdamW steps match the float64 reference`, async () => {
    const gpu = await testGpu();
    const rng = freshRng("dense-topk");
    const d = 13 + rng.int(8), m = 37 + rng.int(30), k = 3 + rng.int(4), n = 19 + rng.int(20);
    const sae = randomSae(rng, "topk", d, m, k);
    const trainer = new Trainer(gpu, sae, {
      weightDecay: 0.01,
      gradClip: 0.5,
      decoderConstraint: false,
    });
    try {
      await checkThreeSteps(trainer, to64(sae, k), rng, n, { clip: 0.5 });
    } finally {
      trainer.release();
    }
  });
}

Deno.test("dense GPU trainer, ReLU + L1: gradients match finite differences of the float64 loss", async () => {
  const gpu = await testGpu();
  const rng = freshRng("dense-relu");
  const d = 7, m = 11, n = 9, lambda = 0.3;
  const sae = randomSae(rng, "relu", d, m, 0);
  const x = rng.normals(n * d);
  const loss = (w: Record<string, Float64Array>) => {
    let mse = 0, l1 = 0;
    for (let t = 0; t < n; t++) {
      const h = new Float64Array(m);
      for (let j = 0; j < m; j++) {
        let s = w.b_enc[j];
        for (let i = 0; i < d; i++) s += (x[t * d + i] - w.b_dec[i]) * w.W_enc[i * m + j];
        h[j] = Math.max(s, 0);
      }
      for (let i = 0; i < d; i++) {
        let s = w.b_dec[i];
        for (let j = 0; j < m; j++) s += h[j] * w.W_dec[j * d + i];
        mse += (s - x[t * d + i]) ** 2;
      }
      for (let j = 0; j < m; j++) {
        let nrm = 0;
        for (let i = 0; i < d; i++) nrm += w.W_dec[j * d + i] ** 2;
        l1 += h[j] * Math.sqrt(nrm);
      }
    }
    return mse / (n * d) + lambda * l1 / n;
  };
  const trainer = new DenseGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
  });
  try {
    await trainer.forward(x, n);
    poisonAll(gpu.device, trainer.grads);
    await trainer.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 0, l1: lambda });
    const w64: Record<string, Float64Array> = {};
    for (const k of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
      w64[k] = Float64Array.from(sae.weights[k]);
    }
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
      const got = await readF32(gpu.device, trainer.grads[name], w64[name].length);
      const fd = centralDifferences(w64[name], () => loss(w64));
      assertLess(relError(got, fd), 1e-4, `∂${name}`);
    }
    assertEquals((await trainer.toSae()).cfg.kind, "relu");
  } finally {
    trainer.release();
  }
});

Deno.test("DenseGpuTrainer, ReLU + L1: gradients and three AdamW steps match the float64 reference", async () => {
  const gpu = await testGpu();
  const rng = freshRng("dense-relu-steps");
  const d = 9 + rng.int(8), m = 23 + rng.int(20), n = 11 + rng.int(10), lambda = 0.2;
  const sae = randomSae(rng, "relu", d, m, 0);
  const trainer = new DenseGpuTrainer(gpu, sae, {
    weightDecay: 0.01,
    gradClip: 0.8,
    decoderConstraint: false,
  });
  try {
    await checkThreeSteps(trainer, { ...to64(sae, 0), kind: "relu" }, rng, n, {
      clip: 0.8,
      l1: lambda,
    });
  } finally {
    trainer.release();
  }
});
