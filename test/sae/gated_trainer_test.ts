// The gated SAE trainer against float64 (test/sae/gated_ref.ts): the forward (x̂, L0 = #{f > 0},
// the aux term), every parameter's gradient of the whole loss (MSE, ∂KL/∂x̂, the gate's L1, the
// aux reconstruction through the detached decoder) against central finite differences with the
// gate's step held at the unperturbed weights, and the checkpoint state carrying r_mag and b_mag.
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import { readF32 } from "../../gpu/buffers.ts";
import { GatedGpuTrainer } from "../../sae/gated_trainer.ts";
import { initSae } from "../../sae/init.ts";
import { createSaeTrainer } from "../../sae/trainers.ts";
import { poisonAll, testGpu } from "../util/gpu.ts";
import { centralDifferences } from "../util/fd.ts";
import { freshRng, relError } from "../util/rand.ts";
import { gatedForwardRef, gatedLossRef, randomGatedSae } from "./gated_ref.ts";

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec", "r_mag", "b_mag"] as const;
type W = Record<(typeof NAMES)[number], Float64Array>;

const OPTS = { weightDecay: 0, gradClip: 1e9, decoderConstraint: false };

for (const withExt of [true, false]) {
  Deno.test(`gated: forward and gradients vs float64 FD (${withExt ? "KL+MSE" : "MSE"})`, async () => {
    const gpu = await testGpu();
    const rng = freshRng("gated.trainer");
    const d = 5 + rng.int(6), m = 17 + rng.int(24), n = 4 + rng.int(7);
    const sae = randomGatedSae(rng, d, m);
    const x = rng.normals(n * d), g = rng.normals(n * d, 0.3);
    const wMse = 0.5 + rng.uniform(), wExt = withExt ? 0.2 : 0, lambda = 0.1 + rng.uniform();
    const w0 = Object.fromEntries(NAMES.map((k) => [k, Float64Array.from(sae.weights[k]!)])) as W;
    const detached = { W_dec: w0.W_dec.slice(), b_dec: w0.b_dec.slice() };
    const ref0 = gatedForwardRef(sae.cfg, w0, x);
    const opts = { x, g, wMse, wExt, lambda, detached, open: ref0.open };
    const trainer = await createSaeTrainer(gpu, sae, OPTS);
    assert(trainer instanceof GatedGpuTrainer, "createSaeTrainer dispatches gated");
    try {
      const fwd = await trainer.forward(x, n);
      assertLess(relError(fwd.xhat, ref0.xHat), 1e-5, "x̂");
      const l0 = ref0.f.reduce((a, v) => a + (v > 0 ? 1 : 0), 0) / n;
      assertEquals(fwd.l0, l0, "L0 counts f > 0");
      assert(l0 > 0 && l0 < m, `a mix of open and shut latents (L0 ${l0} of ${m})`);
      const inf = await trainer.forward(x, n, true);
      assertEquals(Array.from(inf.xhat), Array.from(fwd.xhat), "inference x̂ = training x̂");
      await assertRejects(
        () => trainer.backwardAndStep({ wMse, gExt: null, wExt: 0, lr: 0, l1: lambda }),
        Error,
        "backward after an inference forward",
      );
      await trainer.forward(x, n);
      poisonAll(gpu.device, trainer.grads);
      const { aux } = await trainer.backwardAndStep({
        wMse,
        gExt: withExt ? g : null,
        wExt,
        lr: 0,
        l1: lambda,
      });
      const want = gatedLossRef(sae.cfg, w0, opts);
      assertLess(Math.abs(aux - want.aux) / want.aux, 1e-5, "aux term");
      for (const name of NAMES) {
        const got = await readF32(gpu.device, trainer.grads[name]!, w0[name].length);
        const fd = centralDifferences(w0[name], () => gatedLossRef(sae.cfg, w0, opts).loss);
        assertLess(relError(got, fd), 1e-4, `∂${name}`);
      }
    } finally {
      trainer.release();
    }
  });
}

Deno.test("gated: init, checkpoint state and the saved SAE carry r_mag and b_mag", async () => {
  const gpu = await testGpu();
  const rng = freshRng("gated.state");
  const d = 4 + rng.int(5), m = 8 + rng.int(9), n = 6;
  const init = initSae({ kind: "gated", dIn: d, dSae: m }, { seed: rng.int(1000) });
  assertEquals(Array.from(init.weights.r_mag!), new Array(m).fill(0));
  assertEquals(Array.from(init.weights.b_mag!), new Array(m).fill(0));
  const sae = randomGatedSae(rng, d, m);
  const trainer = new GatedGpuTrainer(gpu, sae, OPTS);
  try {
    await trainer.forward(rng.normals(n * d), n);
    await trainer.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-2, l1: 0.1 });
    const state = await trainer.state();
    for (const k of ["r_mag", "b_mag", "m.r_mag", "v.b_mag"]) {
      assertEquals(state.get(k)?.data.length, m, `state ${k}`);
    }
    const moved = await trainer.toSae();
    assert(moved.weights.r_mag!.some((v, j) => v !== sae.weights.r_mag![j]), "r_mag trained");
    const other = new GatedGpuTrainer(gpu, randomGatedSae(rng, d, m), OPTS);
    try {
      await other.restore(state);
      const back = await other.toSae();
      assertEquals(Array.from(back.weights.r_mag!), Array.from(moved.weights.r_mag!));
      assertEquals(Array.from(back.weights.b_mag!), Array.from(moved.weights.b_mag!));
    } finally {
      other.release();
    }
  } finally {
    trainer.release();
  }
});

Deno.test("gated: missing or short r_mag is a named error", async () => {
  const gpu = await testGpu();
  const rng = freshRng("gated.bad");
  const sae = randomGatedSae(rng, 4, 8);
  sae.weights.r_mag = new Float32Array(7);
  assertThrows(
    () => new GatedGpuTrainer(gpu, sae, OPTS),
    Error,
    "SAE weight r_mag: expected 8 elements, found 7",
  );
  delete sae.weights.b_mag;
  sae.weights.r_mag = new Float32Array(8);
  assertThrows(
    () => new GatedGpuTrainer(gpu, sae, OPTS),
    Error,
    "SAE weight b_mag: expected 8 elements, found none",
  );
});
