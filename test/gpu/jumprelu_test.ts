// JumpReLU's θ gradient (shaders/jumprelu.wgsl) against float64 on random shapes, many
// pre-activations inside the estimator's window, the output poisoned first.
import { assert } from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { submitPass, UniformArena } from "../../gpu/kernel.ts";
import { thetaGrad } from "../../gpu/jumprelu.ts";
import { assertPassRefused, testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError } from "../util/rand.ts";

Deno.test("jumprelu: theta_grad vs float64 on random shapes", async () => {
  const rng = freshRng("jumprelu");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  for (let trial = 0; trial < 6; trial++) {
    const rows = 1 + rng.int(50), cols = 1 + rng.int(trial < 3 ? 70 : 700);
    const eps = 0.01 + 0.2 * rng.uniform(), lamN = rng.normal() * 0.1;
    const theta = Float32Array.from({ length: cols }, () => rng.uniform());
    const pre = new Float32Array(rows * cols), dh = rng.normals(rows * cols);
    for (let e = 0; e < pre.length; e++) {
      const th = theta[e % cols];
      // Half in or near the window |pre − θ| < ε/2, half anywhere.
      pre[e] = rng.uniform() < 0.5 ? th + eps * 1.4 * (rng.uniform() - 0.5) : rng.normal();
    }
    const bufs = [upload(device, pre), upload(device, dh), upload(device, theta)];
    const out = createBuffer(device, cols * 4);
    poison(device, out);
    submitPass(
      device,
      uniforms,
      "theta",
      (r) =>
        thetaGrad(r, { pre: bufs[0], dh: bufs[1], theta: bufs[2], out }, { rows, cols, eps, lamN }),
    );
    const got = await readF32(device, out, cols);
    const want = new Float64Array(cols);
    // The shader tests the window in f32: the reference takes the same f32 difference and ε/2.
    const halfEps = Math.fround(0.5 * Math.fround(eps));
    for (let e = 0; e < pre.length; e++) {
      const j = e % cols;
      if (Math.abs(Math.fround(pre[e] - theta[j])) < halfEps) {
        want[j] += theta[j] * dh[e] + Math.fround(lamN);
      }
    }
    for (let j = 0; j < cols; j++) want[j] = -want[j] / Math.fround(eps);
    const err = maxScaledError(got, want, 1e-5, 1e-4 * Math.sqrt(rows) / eps);
    assert(err <= 1, `rows=${rows} cols=${cols}: scaled error ${err}`);
    for (const b of [...bufs, out]) b.destroy();
  }
  uniforms.destroy();
});

Deno.test("jumprelu: a short θ buffer is refused by name", async () => {
  const { device } = await testGpu();
  const big = createBuffer(device, 64 * 4), theta = createBuffer(device, 7 * 4);
  assertPassRefused(
    device,
    (r) =>
      thetaGrad(r, { pre: big, dh: big, theta, out: big }, {
        rows: 8,
        cols: 8,
        eps: 0.1,
        lamN: 0,
      }),
    "jumprelu.theta_grad: theta holds 7 values, needs 8 (rows=8 cols=8)",
  );
  big.destroy();
  theta.destroy();
});
