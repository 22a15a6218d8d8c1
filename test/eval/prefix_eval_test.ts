// CE-eval per Matryoshka prefix: the prefix SAE of width w reconstructs exactly as the whole SAE
// with latents ≥ w left out (float64), and evalPrefixes on tiny-neox gives, per prefix, what a
// direct CE-eval of that float64 masked reconstruction gives; the last row is the whole SAE's.
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { f32, i64, need, readSafetensors } from "../../lib/safetensors.ts";
import { decodeModel } from "../../lm/onnx.ts";
import { ceEval } from "../../eval/ce_eval.ts";
import { evalPrefixes, prefixSae } from "../../eval/prefix_eval.ts";
import { createSaeTrainer } from "../../sae/trainers.ts";
import type { Sae } from "../../sae/types.ts";
import { forwardRef, randomSae } from "../sae/ref.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, relError, type Rng } from "../util/rand.ts";

const FIX = new URL("../../fixtures/tiny-neox/", import.meta.url);
const HOOK = "/blocks.1/Add_2_output_0";

/** k 16 is wider than the narrowest prefix (m/8 for m < 128), as with the default ladder. */
function randomMatryoshka(rng: Rng, d: number, m: number): Sae {
  const sae = randomSae(rng, { kind: "batchtopk", dIn: d, dSae: m, k: 16 });
  sae.cfg = {
    kind: "matryoshka_batchtopk",
    dIn: d,
    dSae: m,
    k: 16,
    matryoshkaWidths: [m / 8, m / 4, m / 2, m],
  };
  return sae;
}

/** x̂ of the whole SAE at inference with only latents j < width kept, in float64. */
function maskedRef(sae: Sae, x: ArrayLike<number>, width: number): Float64Array {
  const { dIn: d, dSae: m } = sae.cfg;
  const { h } = forwardRef({ cfg: { ...sae.cfg, kind: "batchtopk" }, weights: sae.weights }, x);
  const n = x.length / d, out = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) {
      let v = sae.weights.b_dec[i];
      for (let j = 0; j < width; j++) v += h[t * m + j] * sae.weights.W_dec[j * d + i];
      out[t * d + i] = v;
    }
  }
  return out;
}

Deno.test("prefixSae: the first w latents as a BatchTopK SAE, exactly the masked whole", () => {
  const rng = freshRng("prefix-sae");
  const d = 5 + rng.int(8), m = 8 * (2 + rng.int(6));
  const sae = randomMatryoshka(rng, d, m);
  const x = rng.normals(9 * d);
  for (const w of [...sae.cfg.matryoshkaWidths!, 1 + rng.int(m)]) {
    const p = prefixSae(sae, w);
    assertEquals(p.cfg.kind, "batchtopk");
    assertEquals(p.cfg.dSae, w);
    assertEquals(p.cfg.k, Math.min(16, w), "k no wider than the prefix");
    assertEquals(p.cfg.matryoshkaWidths, undefined);
    assertLess(relError(forwardRef(p, x).xHat, maskedRef(sae, x, w)), 1e-12, `width ${w}`);
  }
  assertThrows(() => prefixSae(sae, m + 1), RangeError, "width must be in [1");
  assertThrows(
    () => prefixSae({ ...sae, cfg: { ...sae.cfg, kind: "batchtopk" } }, 2),
    Error,
    "not a batchtopk one",
  );
});

Deno.test({
  name: "evalPrefixes: each prefix's CE-eval on tiny-neox is the masked reconstruction's",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("prefix-eval");
    const gpu = await testGpu();
    const ref = await readSafetensors(new URL("reference.safetensors", FIX));
    const model = decodeModel(await Deno.readFile(new URL("tiny-neox.onnx", FIX)));
    const ids = i64(need(ref, "input_ids"));
    const resid = f32(need(ref, "resid"));
    const d = 128, m = 64;
    const sae = randomMatryoshka(rng, d, m);
    // A threshold that lets a few latents per token through on this model's activations.
    const pre = forwardRef({ cfg: { ...sae.cfg, kind: "relu" }, weights: sae.weights }, resid).h;
    // Midway across the widest gap between neighbouring values, so that the tap's activations
    // (equal to the fixture's to 1e-4) put no pre-activation on the other side of it.
    const positives = [...pre].filter((v) => v > 0).sort((a, b) => b - a);
    let q = Math.floor(positives.length / 10);
    for (let r = q; r < positives.length / 6; r++) {
      if (positives[r] - positives[r + 1] > positives[q] - positives[q + 1]) q = r;
    }
    sae.weights.threshold = Float32Array.of((positives[q] + positives[q + 1]) / 2);
    const options = {
      model,
      hook: HOOK,
      ep: "wasm" as const,
      batches: [ids],
      batchSize: 4,
      seqLen: 64,
    };
    const direct = (width: number) =>
      ceEval({
        ...options,
        sae: {
          dIn: d,
          reconstruct: (x) =>
            Promise.resolve({ xhat: Float32Array.from(maskedRef(sae, x, width)) }),
        },
      });
    const full = await direct(m);
    const rows = await evalPrefixes({
      sae,
      full,
      options,
      createTrainer: (p) =>
        createSaeTrainer(gpu, p, { weightDecay: 0, gradClip: 1, decoderConstraint: false }),
    });
    assertEquals(rows.map((r) => r.width), sae.cfg.matryoshkaWidths);
    assertEquals(rows.at(-1)!.ceSpliced, full.ceSpliced);
    for (const row of rows.slice(0, -1)) {
      const want = await direct(row.width);
      assertEquals(row.ceClean, want.ceClean, "the same batches");
      assertLess(Math.abs(row.ceSpliced - want.ceSpliced) / want.ceSpliced, 1e-3, `w ${row.width}`);
      assertLess(Math.abs(row.fvu - want.recon.fvu), 1e-3, `FVU at width ${row.width}`);
    }
    // Wider prefixes fire more latents.
    for (let g = 1; g < rows.length - 1; g++) assert(rows[g].l0! >= rows[g - 1].l0!);
  },
});
