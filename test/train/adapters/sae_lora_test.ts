// LoRA on the SAE: at step 0 the SAE's reconstruction is unchanged bit for bit, and the LoRA
// factors' gradients match central finite differences of the float64 loss of the merged SAE.
import { assertEquals, assertLess } from "@std/assert";
import { TopKGpuTrainer } from "../../../sae/topk_trainer.ts";
import type { Sae } from "../../../sae/types.ts";
import { SaeLoraTrainer } from "../../../train/adapters/sae_lora.ts";
import { testGpu } from "../../util/gpu.ts";
import { freshRng, relError } from "../../util/rand.ts";
import { centralDifferences } from "../../util/fd.ts";

for (const dropout of [0, 0.5]) {
  Deno.test(`SAE LoRA (dropout ${dropout}): unchanged at step 0, factor gradients vs finite differences`, async () => {
    const gpu = await testGpu();
    const rng = freshRng("sae-lora");
    const d = 6, m = 12, k = 3, n = 5, r = 2, alpha = 3, wMse = 0.7, wExt = 0.3;
    const sae: Sae = {
      cfg: { kind: "topk", dIn: d, dSae: m, k },
      weights: {
        W_enc: rng.normals(d * m, 0.4),
        b_enc: rng.normals(m, 0.1),
        W_dec: rng.normals(m * d, 0.4),
        b_dec: rng.normals(d, 0.1),
      },
    };
    const x = rng.normals(n * d), g = rng.normals(n * d);
    const opts = { weightDecay: 0, gradClip: 1e9, decoderConstraint: false, auxK: 0 };
    const plain = new TopKGpuTrainer(gpu, sae, opts);
    const lora = new SaeLoraTrainer(new TopKGpuTrainer(gpu, sae, opts), sae, {
      rank: r,
      alpha,
      weightDecay: 0,
      gradClip: 1e9,
      dropout,
    });
    try {
      assertEquals((await lora.forward(x, n)).xhat, (await plain.forward(x, n)).xhat);
      for (const key of ["B_enc", "B_dec"] as const) {
        lora.factors[key].set(rng.normals(lora.factors[key].length, 0.3));
      }
      const F = Object.fromEntries(
        Object.entries(lora.factors).map(([key, v]) => [key, Float64Array.from(v)]),
      );
      const s = alpha / r;
      // The step's dropout mask scales rows of A (fixed between the forward and the backward).
      let mask: { enc: Float32Array; dec: Float32Array } | null = null;
      const me = (i: number) => mask?.enc[i] ?? 1, md = (j: number) => mask?.dec[j] ?? 1;
      const loss = () => {
        const We = Float64Array.from(sae.weights.W_enc), Wd = Float64Array.from(sae.weights.W_dec);
        for (let i = 0; i < d; i++) {
          for (let j = 0; j < m; j++) {
            for (let q = 0; q < r; q++) {
              We[i * m + j] += s * me(i) * F.A_enc[i * r + q] * F.B_enc[q * m + j];
            }
          }
        }
        for (let j = 0; j < m; j++) {
          for (let i = 0; i < d; i++) {
            for (let q = 0; q < r; q++) {
              Wd[j * d + i] += s * md(j) * F.A_dec[j * r + q] * F.B_dec[q * d + i];
            }
          }
        }
        let mse = 0, ext = 0;
        for (let t = 0; t < n; t++) {
          const pre = Float64Array.from({ length: m }, (_, j) => {
            let v = sae.weights.b_enc[j];
            for (let i = 0; i < d; i++) v += (x[t * d + i] - sae.weights.b_dec[i]) * We[i * m + j];
            return v;
          });
          const top = [...pre.keys()].sort((a, b) => pre[b] - pre[a] || a - b).slice(0, k);
          for (let i = 0; i < d; i++) {
            let v = sae.weights.b_dec[i];
            for (const j of top) v += Math.max(pre[j], 0) * Wd[j * d + i];
            mse += (v - x[t * d + i]) ** 2;
            ext += g[t * d + i] * v;
          }
        }
        return wMse * mse / (n * d) + wExt * ext;
      };
      await lora.forward(x, n);
      mask = lora.dropoutMask;
      if (dropout) {
        const dropped = [...mask!.enc, ...mask!.dec].filter((v) => v === 0).length;
        assertLess(0, dropped, "some features dropped");
      }
      await lora.backwardAndStep({ wMse, gExt: g, wExt, lr: 0 });
      for (const [key, arr] of Object.entries(F)) {
        const fd = centralDifferences(arr, () => loss());
        assertLess(relError(lora.lastGrads[key], fd), 1e-4, `∂${key}`);
      }
    } finally {
      plain.release();
      lora.release();
    }
  });
}
