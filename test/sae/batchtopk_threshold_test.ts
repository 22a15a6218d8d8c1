// BatchTopK's inference threshold with a start step: untouched before it, then the running mean of
// the batches' smallest selected activations (float64 reference on fresh random batches).
import { assertAlmostEquals, assertEquals } from "@std/assert";
import { DenseGpuTrainer } from "../../sae/dense_trainer.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";
import { randomSae } from "./ref.ts";

Deno.test("batchtopk: thresholdStartStep holds the threshold, then averages from there", async () => {
  const gpu = await testGpu();
  const rng = freshRng("batchtopk-start");
  const d = 6 + rng.int(5), m = 20 + rng.int(20), k = 2 + rng.int(3), n = 5 + rng.int(6);
  const sae = randomSae(rng, { kind: "batchtopk", dIn: d, dSae: m, k });
  sae.weights.threshold = Float32Array.of(-1);
  const start = 2 + rng.int(3), steps = start + 4 + rng.int(4);
  const t = new DenseGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1,
    decoderConstraint: false,
    thresholdStartStep: start,
  });
  try {
    const w = sae.weights;
    const mins: number[] = [];
    for (let s = 0; s < steps; s++) {
      const x = rng.normals(n * d);
      // Forward only: the weights stay as they are, the threshold follows the batches.
      await t.forward(Float32Array.from(x), n);
      const pos: number[] = [];
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < m; j++) {
          let v = w.b_enc[j];
          for (let i = 0; i < d; i++) v += (x[r * d + i] - w.b_dec[i]) * w.W_enc[i * m + j];
          if (v > 0) pos.push(v);
        }
      }
      pos.sort((a, b) => b - a);
      mins.push(pos[Math.min(k * n, pos.length) - 1]);
      const th = (await t.toSae()).weights.threshold![0];
      if (s < start) assertEquals(th, -1, `step ${s}: before the start`);
      else {
        const tail = mins.slice(start);
        const mean = tail.reduce((a, v) => a + v, 0) / tail.length;
        assertAlmostEquals(th, mean, 1e-4 * (1 + Math.abs(mean)), `step ${s}`);
      }
    }
  } finally {
    t.release();
  }
});
