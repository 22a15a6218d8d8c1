import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { jumpThresholdFor, normalQuantile } from "../../sae/init.ts";
import { SaeInit } from "../../train/config.ts";
import { normalizationFor, pretrainLrFor, scratchSparsity } from "../../train/scratch_defaults.ts";

Deno.test("normalQuantile matches Φ⁻¹ at known points and inverts a float64 Φ", () => {
  assertAlmostEquals(normalQuantile(0.5), 0, 1e-9);
  assertAlmostEquals(normalQuantile(0.975), 1.959963984540054, 1e-7);
  assertAlmostEquals(normalQuantile(0.001), -3.090232306167813, 1e-6);
  // Φ by Simpson's rule on the density, at random p.
  const phi = (z: number) => {
    const n = 4000, a = -10, h = (z - a) / n;
    let s = 0;
    for (let i = 0; i <= n; i++) {
      const w = i === 0 || i === n ? 1 : i % 2 ? 4 : 2;
      const t = a + i * h;
      s += w * Math.exp(-t * t / 2);
    }
    return s * h / 3 / Math.sqrt(2 * Math.PI);
  };
  for (let i = 0; i < 20; i++) {
    const p = 0.001 + 0.998 * Math.random();
    assertAlmostEquals(phi(normalQuantile(p)), p, 1e-7);
  }
  assertThrows(() => normalQuantile(1), RangeError);
});

Deno.test("jumpThresholdFor: the fraction of N(0, σ²) above θ is target/d_sae", () => {
  const sigma = 0.5 + Math.random(), th = jumpThresholdFor(32, 1024, sigma);
  let above = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    if (sigma * z > th) above++;
  }
  assertAlmostEquals(above / n, 32 / 1024, 0.003);
  assertThrows(() => jumpThresholdFor(2048, 1024, 1), RangeError);
});

Deno.test("scratch defaults: normalised relu / jumprelu, scale-free λ, batchtopk start step", () => {
  assertEquals(normalizationFor("relu", undefined), "expected_average_only_in");
  assertEquals(normalizationFor("topk", undefined), "none");
  assertEquals(normalizationFor("relu", "none"), "none");
  const relu = SaeInit.parse({ kind: "relu", d_sae: 1024 });
  const a = scratchSparsity(relu, { dIn: 128, rms: 1, mseSteps: 400 });
  const b = scratchSparsity(relu, { dIn: 128, rms: 3, mseSteps: 400 });
  // MSE scales as rms², the L1 term as rms: λ ∝ rms keeps their balance.
  assertAlmostEquals(b.lambda! / a.lambda!, 3, 1e-12);
  assertEquals(a.warmupSteps, 20);
  assertEquals(
    scratchSparsity({ ...relu, l1_coefficient: 0.3 }, {
      dIn: 128,
      rms: 3,
      mseSteps: 400,
    }).lambda,
    0.3,
  );
  const jr = SaeInit.parse({ kind: "jumprelu", d_sae: 1024 });
  const j1 = scratchSparsity(jr, { dIn: 128, rms: 1, mseSteps: 400 });
  const j2 = scratchSparsity(jr, { dIn: 128, rms: 2, mseSteps: 400 });
  assertAlmostEquals(j2.lambda! / j1.lambda!, 4, 1e-12); // L0 term is scale-free, MSE ∝ rms²
  assertAlmostEquals(j2.theta! / j1.theta!, 2, 1e-12);
  assertAlmostEquals(j2.bandwidth! / j1.bandwidth!, 2, 1e-12);
  // ε is 0.001 of the activations' norm √(d_in)·rms, so it grows with the width as the norm does.
  const wide = scratchSparsity(jr, { dIn: 512, rms: 1, mseSteps: 400 });
  assertAlmostEquals(wide.bandwidth! / j1.bandwidth!, 2, 1e-12);
  assertEquals(j1.signed, true);
  assertEquals(a.signed, undefined, "relu's λ stays positive");
  assertEquals(pretrainLrFor("relu", undefined), 3e-3);
  assertEquals(pretrainLrFor("jumprelu", undefined), 3e-3);
  assertEquals(pretrainLrFor("topk", undefined), 1e-3);
  assertEquals(pretrainLrFor("batchtopk", undefined), 1e-3);
  assertEquals(pretrainLrFor("relu", 5e-4), 5e-4);
  const bt = scratchSparsity(SaeInit.parse({ kind: "batchtopk", d_sae: 1024 }), {
    dIn: 128,
    rms: 1,
    mseSteps: 400,
  });
  assertEquals(bt.thresholdStartStep, 200);
  assert(scratchSparsity(SaeInit.parse({ kind: "topk" }), { dIn: 8, rms: 1, mseSteps: 4 }));
});

Deno.test("scratch defaults: gated is normalised, with relu's λ, warm-up and MSE-phase LR", () => {
  assertEquals(normalizationFor("gated", undefined), "expected_average_only_in");
  assertEquals(pretrainLrFor("gated", undefined), pretrainLrFor("relu", undefined));
  const rms = 0.5 + 3 * Math.random(), dIn = 16 + Math.floor(200 * Math.random());
  const o = { dIn, rms, mseSteps: 400 };
  const gated = scratchSparsity(SaeInit.parse({ kind: "gated", d_sae: 512 }), o);
  assertEquals(gated, scratchSparsity(SaeInit.parse({ kind: "relu", d_sae: 512 }), o));
  assertAlmostEquals(gated.lambda!, rms / dIn, 1e-15);
});
