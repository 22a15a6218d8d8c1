import { assert } from "@std/assert";
import { estimateScalingFactor, foldScaling, ScalingEstimator } from "../../sae/scaling.ts";
import { freshRng, relError } from "../util/rand.ts";
import { forwardRef, randomSae } from "./ref.ts";

Deno.test("scaling factor makes E‖s·x‖² = d_in (and E‖s·x‖ = √d_in for mean_norm)", () => {
  const rng = freshRng("scaling");
  const d = 30 + rng.int(20), N = 200 + rng.int(50);
  const x = rng.normals(N * d, 5 + rng.uniform() * 10);
  const s = estimateScalingFactor(x, d);
  let msq = 0, mn = 0;
  for (let t = 0; t < N; t++) {
    let q = 0;
    for (let j = 0; j < d; j++) q += (s * x[t * d + j]) ** 2;
    msq += q / N;
  }
  assert(Math.abs(msq - d) / d < 1e-9, `E‖s·x‖² = ${msq}, d_in = ${d}`);
  const s2 = estimateScalingFactor(x, d, "mean_norm");
  for (let t = 0; t < N; t++) {
    let q = 0;
    for (let j = 0; j < d; j++) q += (s2 * x[t * d + j]) ** 2;
    mn += Math.sqrt(q) / N;
  }
  assert(Math.abs(mn - Math.sqrt(d)) / Math.sqrt(d) < 1e-9, `E‖s·x‖ = ${mn}`);
  // Over batches it is the same as over their concatenation.
  const e = new ScalingEstimator(d);
  e.add(x.subarray(0, 17 * d));
  e.add(x.subarray(17 * d));
  assert(Math.abs(e.factor() - s) / s < 1e-12);
});

for (const kind of ["relu", "topk", "jumprelu", "batchtopk"] as const) {
  Deno.test(`folded ${kind} SAE on raw x equals the scaled SAE on s·x, divided by s`, () => {
    const rng = freshRng(`fold-${kind}`);
    const d = 12 + rng.int(10), n = 30 + rng.int(20), N = 9;
    const sae = randomSae(rng, { kind, dIn: d, dSae: n, k: 4 });
    const x = rng.normals(N * d, 8);
    const s = estimateScalingFactor(x, d);
    const scaled = forwardRef(sae, x.map((v) => v * s));
    const folded = forwardRef(foldScaling(sae, s), x);
    const want = scaled.xHat.map((v) => v / s);
    const e = relError(folded.xHat, want);
    assert(e < 1e-5, `x̂ rel error ${e}`);
    assert(relError(folded.h, scaled.h) < 1e-5, "latents differ");
    assert(folded.h.some((v) => v !== 0), "no latent fired: the test would pass vacuously");
  });
}
