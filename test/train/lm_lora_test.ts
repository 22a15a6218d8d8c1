// LoRA on the LM after the hook: at step 0 the KL step's outputs equal the unadapted LM's, the
// gradients with respect to the adapters match float64 finite differences of the suffix's KL, and
// adapters before the hook are refused with the reason.
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { DataType, decodeModel, encodeModel } from "../../lm/onnx.ts";
import { createSession, ort } from "../../lm/session.ts";
import { klStepModel, suffixWithLosses } from "../../lm/splice_grad.ts";
import { LmLora, LmLoraError } from "../../train/adapters/lm_lora.ts";
import { type Feeds, finiteDifferenceError } from "../util/gradcheck.ts";
import { runReference } from "../util/onnx_interp.ts";
import { freshRng, relError } from "../util/rand.ts";

const model = decodeModel(
  await Deno.readFile(new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);
const HOOK = "/blocks.1/Add_2_output_0", B = 1, T = 5, D = 128, V = 256;

function logprobs(rng: ReturnType<typeof freshRng>): Float64Array {
  const lp = new Float64Array(B * T * V);
  for (let r = 0; r < B * T; r++) {
    const z = rng.normals64(V, 2);
    const mx = Math.max(...z);
    const lse = mx + Math.log(z.reduce((s, v) => s + Math.exp(v - mx), 0));
    for (let v = 0; v < V; v++) lp[r * V + v] = z[v] - lse;
  }
  return lp;
}

Deno.test({
  name:
    "LM LoRA after the hook: identity at step 0; adapter gradients vs float64 finite differences",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("lm-lora");
    const lora = new LmLora(model, HOOK, {
      rank: 2,
      alpha: 4,
      layers: "after_hook",
      saeKind: "topk",
    });
    assertEquals(lora.adapters.map((a) => a.name).sort(), [
      "/blocks.2/dense/MatMul",
      "/blocks.2/fc_in/MatMul",
      "/blocks.2/fc_out/MatMul",
      "/blocks.2/qkv/MatMul",
      "/blocks.3/dense/MatMul",
      "/blocks.3/fc_in/MatMul",
      "/blocks.3/fc_out/MatMul",
      "/blocks.3/qkv/MatMul",
    ]);
    const hook = rng.normals(B * T * D, 1.5), lp = logprobs(rng);
    const labels = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const base = {
      hook: new ort.Tensor("float32", hook, [B, T, D]),
      logprobs_clean: new ort.Tensor("float32", Float32Array.from(lp), [B, T, V]),
      labels: new ort.Tensor("int64", labels, [B, T]),
    };
    const plain = await createSession(encodeModel(klStepModel(model, HOOK)), { ep: "wasm" });
    const adapted = await createSession(encodeModel(lora.klStepModel()), { ep: "wasm" });
    try {
      const a = await plain.run(base), b = await adapted.run({ ...base, ...lora.feeds() });
      assertEquals(b["kl_mean"].data, a["kl_mean"].data, "KL unchanged with B = 0");
      assertLess(
        relError(b["grad_kl_hook"].data as Float32Array, a["grad_kl_hook"].data as Float32Array),
        1e-6,
      );
      const gB = lora.gradsFrom(b, 1);
      assert(Object.values(gB).some((g) => g.some((v) => v !== 0)), "B gets gradient at step 0");
    } finally {
      await plain.release();
      await adapted.release();
    }
    // Float64: random B so that every factor has a gradient; check one A and one B per block.
    for (const v of Object.values(lora.params)) v.set(rng.normals(v.length, 0.05));
    const feeds: Feeds = {
      hook: { dtype: DataType.FLOAT, dims: [B, T, D], data: Float64Array.from(hook) },
      logprobs_clean: { dtype: DataType.FLOAT, dims: [B, T, V], data: lp },
      labels: { dtype: DataType.INT64, dims: [B, T], data: Float64Array.from(labels, Number) },
    };
    for (const [name, t] of Object.entries(lora.feeds())) {
      feeds[name] = {
        dtype: DataType.FLOAT,
        dims: t.dims as number[],
        data: Float64Array.from(t.data as Float32Array),
      };
    }
    const checked = lora.adapters.filter((a) => /qkv|fc_out/.test(a.name)).flatMap((
      a,
    ) => [a.A, a.B]);
    const grads = runReference(lora.klStepModel(), feeds, checked.map((n) => `grad_${n}`));
    const fwd = suffixWithLosses(lora.model, HOOK);
    for (const name of checked) {
      const { err, fdNorm } = finiteDifferenceError(
        fwd,
        "kl_mean",
        feeds,
        name,
        grads[`grad_${name}`].data!,
        rng,
        { samples: 6 },
      );
      assert(fdNorm > 1e-8, `${name}: finite differences are ~0`);
      assert(err <= 1e-6, `${name}: scaled error ${err}`);
    }
  },
});

Deno.test("LM LoRA before the hook is refused, with the reason for ReLU SAEs", () => {
  assertThrows(
    () => new LmLora(model, HOOK, { rank: 2, alpha: 4, layers: "all", saeKind: "relu" }),
    LmLoraError,
    "changing how many latents fire",
  );
  assertThrows(
    () =>
      new LmLora(model, "/blocks.3/Add_2_output_0", {
        rank: 2,
        alpha: 4,
        layers: "after_hook",
        saeKind: "topk",
      }),
    LmLoraError,
    "last block",
  );
});
