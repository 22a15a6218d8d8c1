// BatchTopK and JumpReLU on the dense GPU trainer, against float64 references: the batch-wide
// selection and the running threshold, inference through the threshold (SAELens semantics, as
// test/sae/ref.ts), weight gradients against central finite differences, and JumpReLU's θ gradient
// against the straight-through estimator written out in float64.
import { assertEquals, assertLess, assertRejects } from "@std/assert";
import { readF32 } from "../../gpu/buffers.ts";
import { DenseGpuTrainer } from "../../sae/dense_trainer.ts";
import { GatedGpuTrainer } from "../../sae/gated_trainer.ts";
import { poisonAll, testGpu } from "../util/gpu.ts";
import { centralDifferences } from "../util/fd.ts";
import { freshRng, relError } from "../util/rand.ts";
import { randomGatedSae } from "./gated_ref.ts";
import { forwardRef, randomSae } from "./ref.ts";
import { batchTopk, decodeKept, pre64, to64, type W } from "./ref64.ts";

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;

/** Central differences of f at every element of w[name]. */
function fdGrad(w: W, name: string, f: (w: W) => number): Float64Array {
  return centralDifferences(w[name], () => f(w));
}

Deno.test("batchtopk: the K·N largest over the batch, running threshold, gradients vs FD", async () => {
  const gpu = await testGpu();
  const rng = freshRng("batchtopk");
  const d = 6 + rng.int(5), m = 20 + rng.int(20), k = 2 + rng.int(3), n = 5 + rng.int(6);
  const sae = randomSae(rng, { kind: "batchtopk", dIn: d, dSae: m, k });
  sae.weights.threshold = Float32Array.of(-1); // not set yet: the first batch sets it
  const x = rng.normals(n * d), g = rng.normals(n * d), wMse = 0.6, wExt = 0.2;
  const w0 = to64(sae);
  // The selection, fixed at w0 (a small perturbation does not change it).
  const { keep, smallest } = batchTopk(w0, x, { n, d, m, k });
  const forward = (w: W) => decodeKept(w, x, keep, { n, d, m });
  const loss = (w: W) => {
    const xhat = forward(w);
    let mse = 0, ext = 0;
    for (let e = 0; e < n * d; e++) {
      mse += (xhat[e] - x[e]) ** 2;
      ext += g[e] * xhat[e];
    }
    return wMse * mse / (n * d) + wExt * ext;
  };
  const trainer = new DenseGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
  });
  try {
    const f = await trainer.forward(x, n);
    assertLess(relError(f.xhat, forward(w0)), 1e-5, "x̂ of the batch selection");
    assertEquals(f.l0, keep.size / n);
    poisonAll(gpu.device, trainer.grads);
    await trainer.backwardAndStep({ wMse, gExt: g, wExt, lr: 0 });
    for (const name of NAMES) {
      const got = await readF32(gpu.device, trainer.grads[name], w0[name].length);
      assertLess(relError(got, fdGrad(w0, name, loss)), 1e-4, `∂${name}`);
    }
    // The first batch sets the inference threshold to the smallest selected activation.
    const saved = await trainer.toSae();
    assertLess(Math.abs(saved.weights.threshold![0] - smallest) / smallest, 1e-5, "threshold");
    // A fresh batch, so that no pre-activation sits exactly on the threshold.
    const x2 = rng.normals(n * d);
    const inf = await trainer.forward(x2, n, true);
    assertLess(relError(inf.xhat, forwardRef(saved, x2).xHat), 1e-5, "x̂ through the threshold");
  } finally {
    trainer.release();
  }
});

Deno.test("batchtopk: fewer positive pre-activations than K·N keeps every positive one", async () => {
  const gpu = await testGpu();
  const rng = freshRng("batchtopk-few");
  const d = 5, m = 8, n = 4;
  const sae = randomSae(rng, { kind: "batchtopk", dIn: d, dSae: m, k: m });
  sae.weights.b_enc = Float32Array.from({ length: m }, () => -0.2 - rng.uniform());
  const x = rng.normals(n * d, 0.3);
  const w0 = to64(sae);
  let positives = 0;
  for (let t = 0; t < n; t++) for (const v of pre64(w0, x, t, d, m)) if (v > 0) positives++;
  const trainer = new DenseGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1,
    decoderConstraint: false,
  });
  try {
    assertEquals((await trainer.forward(x, n)).l0, positives / n);
  } finally {
    trainer.release();
  }
});

Deno.test("jumprelu: forward as SAELens, weight gradients vs FD, θ by the straight-through estimator", async () => {
  const gpu = await testGpu();
  const rng = freshRng("jumprelu");
  const d = 6, m = 14, n = 9, lambda = 0.05, eps = 0.5, wMse = 1;
  const sae = randomSae(rng, { kind: "jumprelu", dIn: d, dSae: m });
  const x = rng.normals(n * d);
  const w0 = to64(sae);
  const mse = (w: W) => {
    let s = 0;
    for (let t = 0; t < n; t++) {
      const pre = pre64(w, x, t, d, m);
      for (let i = 0; i < d; i++) {
        let v = w.b_dec[i];
        for (let j = 0; j < m; j++) {
          if (pre[j] > w.threshold[j] && pre[j] > 0) v += pre[j] * w.W_dec[j * d + i];
        }
        s += (v - x[t * d + i]) ** 2;
      }
    }
    return wMse * s / (n * d);
  };
  // STE: ∂/∂θ_j = Σ_t −(1/ε)·1[|pre − θ| < ε/2]·(θ_j·∂L/∂h_tj + λ/N), ∂L/∂h from the float64 MSE.
  const thetaGrad = new Float64Array(m);
  for (let t = 0; t < n; t++) {
    const pre = pre64(w0, x, t, d, m);
    const xhat = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      xhat[i] = w0.b_dec[i];
      for (let j = 0; j < m; j++) {
        if (pre[j] > w0.threshold[j] && pre[j] > 0) xhat[i] += pre[j] * w0.W_dec[j * d + i];
      }
    }
    for (let j = 0; j < m; j++) {
      if (!(Math.abs(pre[j] - w0.threshold[j]) < eps / 2)) continue;
      let dh = 0;
      for (let i = 0; i < d; i++) {
        dh += wMse * 2 * (xhat[i] - x[t * d + i]) / (n * d) * w0.W_dec[j * d + i];
      }
      thetaGrad[j] -= (w0.threshold[j] * dh + lambda / n) / eps;
    }
  }
  const trainer = new DenseGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
    jumpBandwidth: eps,
  });
  try {
    const f = await trainer.forward(x, n);
    assertLess(relError(f.xhat, forwardRef(sae, x).xHat), 1e-5, "x̂");
    poisonAll(gpu.device, trainer.grads);
    await trainer.backwardAndStep({ wMse, gExt: null, wExt: 0, lr: 0, l1: lambda });
    for (const name of NAMES) {
      const got = await readF32(gpu.device, trainer.grads[name], w0[name].length);
      assertLess(relError(got, fdGrad(w0, name, mse)), 1e-4, `∂${name}`);
    }
    const gotTheta = await readF32(gpu.device, trainer.grads.threshold!, m);
    assertLess(relError(gotTheta, thetaGrad), 1e-4, "∂θ (STE)");
    assertLess(0, thetaGrad.reduce((a, v) => a + Math.abs(v), 0), "some θ inside the window");
  } finally {
    trainer.release();
  }
});

Deno.test("dense trainer: a threshold of the wrong size is a named error", async () => {
  const gpu = await testGpu();
  const rng = freshRng("kinds-errors");
  const sae = randomSae(rng, { kind: "jumprelu", dIn: 4, dSae: 6 });
  sae.weights.threshold = new Float32Array(5);
  let msg = "";
  try {
    new DenseGpuTrainer(gpu, sae, { weightDecay: 0, gradClip: 1, decoderConstraint: false });
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEquals(msg, "jumprelu SAE: threshold must hold 6 value(s), found 5");
});

Deno.test("dense and gated trainers: a batch over one storage binding names the tokens that fit", async () => {
  const gpu = await testGpu();
  const rng = freshRng("dense-limit");
  const limit = gpu.device.limits.maxStorageBufferBindingSize, n = 4096, d = 4;
  // d_sae such that [n, d_sae] floats are just over the limit: n − 1 tokens fit.
  const m = Math.floor(limit / (4 * n)) + 1, fits = Math.floor(limit / (m * 4));
  const opts = { weightDecay: 0, gradClip: 1, decoderConstraint: false };
  const trainers: [DenseGpuTrainer | GatedGpuTrainer, string][] = [
    [new DenseGpuTrainer(gpu, randomSae(rng, { kind: "relu", dIn: d, dSae: m }), opts), "relu"],
    [new GatedGpuTrainer(gpu, randomGatedSae(rng, d, m), opts), "gated"],
  ];
  for (const [trainer, kind] of trainers) {
    try {
      await assertRejects(
        () => trainer.forward(rng.normals(n * d), n),
        RangeError,
        `use at most ${fits} tokens a step with a ${kind} SAE`,
      );
    } finally {
      trainer.release();
    }
  }
});
