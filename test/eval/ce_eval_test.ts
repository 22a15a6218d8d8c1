// CE-eval on tiny-neox with the fixture's `recon` as a stand-in reconstruction must give PyTorch's
// numbers; the pooled metrics are checked against a plain float64 computation.
import { assert, assertEquals, assertLess, assertRejects } from "@std/assert";
import { f32, i64, need, readSafetensors } from "../../lib/safetensors.ts";
import { decodeModel } from "../../lm/onnx.ts";
import { ceEval, EvalError, type Reconstructor } from "../../eval/ce_eval.ts";
import { ReconAccumulator } from "../../eval/recon_metrics.ts";
import { freshRng } from "../util/rand.ts";

const FIX = new URL("../../fixtures/tiny-neox/", import.meta.url);
const HOOK = "/blocks.1/Add_2_output_0";
const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

Deno.test({
  name: "CE-eval with the fixture's recon matches PyTorch's CE clean/spliced/zero and KL (wasm EP)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const ref = await readSafetensors(new URL("reference.safetensors", FIX));
    const model = decodeModel(await Deno.readFile(new URL("tiny-neox.onnx", FIX)));
    const ids = i64(need(ref, "input_ids"));
    const recon = f32(need(ref, "recon"));
    const resid = f32(need(ref, "resid"));
    const sae: Reconstructor = {
      dIn: 128,
      reconstruct: (x) => {
        // The tap's hook output must be PyTorch's resid; then splice the fixture's recon.
        assertLess(
          Math.sqrt(x.reduce((s, v, i) => s + (v - resid[i]) ** 2, 0)) /
            Math.sqrt(resid.reduce((s, v) => s + v * v, 0)),
          1e-4,
        );
        return Promise.resolve({ xhat: recon });
      },
    };
    const r = await ceEval({
      model,
      hook: HOOK,
      ep: "wasm",
      batches: [ids],
      batchSize: 4,
      seqLen: 64,
      sae,
    });
    assertLess(rel(r.ceClean, mean(f32(need(ref, "ce_clean_per_token")))), 1e-4);
    assertLess(rel(r.ceSpliced, mean(f32(need(ref, "ce_spliced_per_token")))), 1e-4);
    assertLess(rel(r.ceZeroAblation, mean(f32(need(ref, "ce_zero_per_token")))), 1e-4);
    assertLess(rel(r.kl, mean(f32(need(ref, "kl_per_token")))), 1e-4);
    assertEquals(r.averaging, "pooled over tokens");
    assertEquals(r.tokens, 256);
    assert(r.ceMeanAblation > r.ceClean, "mean-ablation should hurt");
    assert(r.ceRecovered > 0.99 && r.ceRecovered < 1.01, `recovered ${r.ceRecovered}`);
    assertEquals(r.perPosition.kl.length, 64);
    assertEquals(r.recon.l0, null);
  },
});

Deno.test({
  name: "CE-eval errors: SAE width ≠ hook width names both; empty data; short sequences",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const model = decodeModel(await Deno.readFile(new URL("tiny-neox.onnx", FIX)));
    const sae: Reconstructor = { dIn: 64, reconstruct: (x) => Promise.resolve({ xhat: x }) };
    const ids = new BigInt64Array(2 * 8).fill(65n);
    const base = { model, hook: HOOK, ep: "wasm" as const, batchSize: 2, seqLen: 8, sae };
    await assertRejects(
      () => ceEval({ ...base, batches: [ids] }),
      EvalError,
      "64-wide activations but hook",
    );
    await assertRejects(
      () => ceEval({ ...base, batches: [], sae: { ...sae, dIn: 128 } }),
      EvalError,
      "no batches",
    );
    await assertRejects(() => ceEval({ ...base, seqLen: 1, batches: [] }), EvalError, "at least 2");
  },
});

Deno.test("pooled metrics match a float64 computation; FVU is about the mean", () => {
  const rng = freshRng("recon_metrics");
  const n = 37, d = 5, k = 3, m = 11;
  const x = rng.normals(n * d).map((v) => v + 10); // a large mean: FVU-about-zero would be tiny
  const xhat = x.map((v) => v + rng.normal() * 0.3);
  const idx = Uint32Array.from({ length: n * k }, () => rng.int(m));
  const val = Float32Array.from({ length: n * k }, () => (rng.uniform() < 0.8 ? rng.uniform() : 0));
  const acc = new ReconAccumulator(d, m);
  acc.add(x.subarray(0, 20 * d), xhat.subarray(0, 20 * d), {
    kind: "sparse",
    idx: idx.subarray(0, 20 * k),
    val: val.subarray(0, 20 * k),
    k,
  });
  acc.add(x.subarray(20 * d), xhat.subarray(20 * d), {
    kind: "sparse",
    idx: idx.subarray(20 * k),
    val: val.subarray(20 * k),
    k,
  });
  const r = acc.result(true);
  let se = 0, l0 = 0;
  const mu = new Array(d).fill(0);
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) mu[i] += x[t * d + i] / n;
  let tv = 0;
  for (let e = 0; e < n * d; e++) {
    se += (x[e] - xhat[e]) ** 2;
    tv += (x[e] - mu[e % d]) ** 2;
  }
  for (const v of val) if (v > 0) l0++;
  assertLess(Math.abs(r.mse - se / (n * d)) / (se / (n * d)), 1e-9);
  assertLess(Math.abs(r.fvu - se / tv) / (se / tv), 1e-6);
  assertLess(Math.abs(r.l0! - l0 / n), 1e-12);
  assert(r.fvu > 0.01, "about the mean, not about zero");
  const fired = new Set<number>();
  for (let e = 0; e < n * k; e++) if (val[e] > 0) fired.add(idx[e]);
  assertEquals(r.density!.dead, m - fired.size);
  assertEquals(r.density!.counts.reduce((a, b) => a + b, 0), fired.size);
});

Deno.test({
  name: "an SAE saved in SAELens layout evaluates the same on the GPU as through the float64 path",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { saveSae, loadSae } = await import("../../sae/io.ts");
    const { DenseGpuTrainer } = await import("../../sae/dense_trainer.ts");
    const { forwardRef } = await import("../sae/ref.ts");
    const { initSae } = await import("../../sae/init.ts");
    const { testGpu } = await import("../util/gpu.ts");
    const rng = freshRng("saelens-eval");
    const model = decodeModel(await Deno.readFile(new URL("tiny-neox.onnx", FIX)));
    const ref = await readSafetensors(new URL("reference.safetensors", FIX));
    const ids = i64(need(ref, "input_ids"));
    const made = initSae({ kind: "topk", dIn: 128, dSae: 96, k: 8, metadata: { hookName: HOOK } }, {
      seed: rng.int(1e6),
    });
    made.weights.b_enc = rng.normals(96, 0.5);
    const dir = await Deno.makeTempDir();
    try {
      await saveSae(dir, made);
      const sae = await loadSae(dir);
      const gpu = new DenseGpuTrainer(await testGpu(), sae, {
        weightDecay: 0,
        gradClip: 1,
        decoderConstraint: false,
      });
      const base = {
        model,
        hook: "resid_post:1",
        ep: "wasm" as const,
        batches: [ids],
        batchSize: 4,
        seqLen: 64,
      };
      const onGpu = await ceEval({
        ...base,
        sae: { dIn: 128, reconstruct: async (x, n) => ({ xhat: (await gpu.forward(x, n)).xhat }) },
      });
      gpu.release();
      const in64 = await ceEval({
        ...base,
        sae: {
          dIn: 128,
          reconstruct: (x) => Promise.resolve({ xhat: Float32Array.from(forwardRef(sae, x).xHat) }),
        },
      });
      for (const k of ["ceSpliced", "kl", "ceRecovered"] as const) {
        assertLess(rel(onGpu[k], in64[k]), 1e-4, k);
      }
      assertLess(rel(onGpu.recon.fvu, in64.recon.fvu), 1e-4, "fvu");
      assert(onGpu.ceSpliced > onGpu.ceClean, "a random SAE should cost CE");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "CE-eval errors: unknown hook lists candidates; sequence beyond the context names both",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const model = decodeModel(await Deno.readFile(new URL("tiny-neox.onnx", FIX)));
    const sae: Reconstructor = { dIn: 128, reconstruct: (x) => Promise.resolve({ xhat: x }) };
    const base = { model, ep: "wasm" as const, batchSize: 1, sae };
    await assertRejects(
      () => ceEval({ ...base, hook: "/nope", seqLen: 8, batches: [] }),
      EvalError,
      "/blocks.1/Add_2_output_0",
    );
    await assertRejects(
      () => ceEval({ ...base, hook: HOOK, seqLen: 200, contextLength: 128, batches: [] }),
      EvalError,
      "sequence length 200 is longer than the model's context of 128",
    );
  },
});
