// The step and eval graphs (lm/step_graphs.ts), which run the clean suffix inside the session,
// against PyTorch autograd's answers for tiny-neox and the GPT-2- and Llama-style exports: the
// KL, its gradient, and clean / spliced / zero-ablated CE, from the prefix's activations only.
import { assert, assertEquals } from "@std/assert";
import { f32, i64, parseSafetensors } from "../../lib/safetensors.ts";
import { decodeModel, encodeModel, type ModelProto } from "../../lm/onnx.ts";
import { createSession, ort } from "../../lm/session.ts";
import { ceEvalGraph, klStepGraph, positionMask } from "../../lm/step_graphs.ts";
import { prefix } from "../../lm/surgery.ts";
import { freshRng, relError } from "../util/rand.ts";

const neox = new URL("../../fixtures/tiny-neox/", import.meta.url);
const exports = new URL("../fixtures/lm-export/", import.meta.url);
const CASES = [
  {
    name: "tiny-neox",
    model: new URL("tiny-neox.onnx", neox),
    ref: new URL("reference.safetensors", neox),
  },
  {
    name: "gpt2-mini",
    model: new URL("gpt2-mini.onnx", exports),
    ref: new URL("gpt2-mini.reference.safetensors", exports),
  },
  {
    name: "llama-mini",
    model: new URL("llama-mini.onnx", exports),
    ref: new URL("llama-mini.reference.safetensors", exports),
  },
];

async function run(m: ModelProto, feeds: Record<string, ort.Tensor>) {
  const s = await createSession(encodeModel(m), { ep: "wasm" });
  try {
    const f: Record<string, ort.Tensor> = {};
    for (const n of s.inputNames) {
      assert(feeds[n], `no feed for graph input ${n}`);
      f[n] = feeds[n];
    }
    return await s.run(f);
  } finally {
    await s.release();
  }
}

async function load(c: (typeof CASES)[number]) {
  const model = decodeModel(await Deno.readFile(c.model));
  const file = parseSafetensors(await Deno.readFile(c.ref));
  const r = file.tensors;
  const hook = (file.metadata.hook_tensor ?? "/blocks.1/Add_2_output_0") as string;
  const ids = r.get("input_ids")!;
  const [B, T] = ids.shape;
  const idsT = new ort.Tensor("int64", i64(ids), [B, T]);
  const x = (await run(prefix(model, hook), { input_ids: idsT }))[hook];
  const recon = f32(r.get("recon")!);
  const d = recon.length / (B * T);
  const t = (a: Float32Array) => new ort.Tensor("float32", a, [B, T, d]);
  return { model, hook, r, B, T, d, idsT, x, recon, t };
}

for (const c of CASES) {
  Deno.test(`klStepGraph: KL and ∂KL/∂x̂ from the clean activations match PyTorch (${c.name})`, async () => {
    const { model, hook, r, B, T, idsT, x, recon, t } = await load(c);
    const out = await run(klStepGraph(model, hook), {
      hook_clean: x,
      hook: t(recon),
      kl_mask: new ort.Tensor("float32", positionMask(B, T), [B, T]),
      input_ids: idsT,
    });
    const kl = f32(r.get("kl_per_token")!);
    const want = kl.reduce((a, b) => a + b, 0) / kl.length;
    const got = (out["kl_mean"].data as Float32Array)[0];
    assert(Math.abs(got - want) <= 1e-4 * Math.abs(want), `kl_mean ${got} vs ${want}`);
    const e = relError(out["grad_kl_hook"].data as Float32Array, f32(r.get("grad_kl_recon")!));
    assert(e <= 1e-4, `grad_kl_hook relative error ${e}`);
  });

  Deno.test(`ceEvalGraph: clean, spliced and zero-ablated CE and KL match PyTorch (${c.name})`, async () => {
    const { model, hook, r, B, T, d, idsT, x, recon, t } = await load(c);
    const out = await run(ceEvalGraph(model, hook, 2), {
      hook_clean: x,
      hook_0: t(recon),
      hook_1: t(new Float32Array(B * T * d)),
      labels: idsT,
      input_ids: idsT,
    });
    const pairs: [string, string][] = [
      ["ce_clean", "ce_clean_per_token"],
      ["ce_0", "ce_spliced_per_token"],
      ["ce_1", "ce_zero_per_token"],
      ["kl_0", "kl_per_token"],
    ];
    for (const [got, want] of pairs) {
      const w = r.get(want)!;
      assertEquals([...out[got].dims], w.shape, got);
      const e = relError(out[got].data as Float32Array, f32(w));
      assert(e <= 1e-4, `${got} vs ${want}: relative error ${e}`);
    }
  });
}

Deno.test("klStepGraph: a position mask weights the KL mean, and its gradient is the derivative of that mean", async () => {
  const { model, hook, r, B, T, d, idsT, x, recon, t } = await load(CASES[0]);
  const skip = 3;
  const mask = positionMask(B, T, skip);
  const g = klStepGraph(model, hook);
  const s = await createSession(encodeModel(g), { ep: "wasm" });
  try {
    const step = async (h: Float32Array) => {
      const f: Record<string, ort.Tensor> = {
        hook_clean: x,
        hook: t(h),
        kl_mask: new ort.Tensor("float32", mask, [B, T]),
        input_ids: idsT,
      };
      const o = await s.run(Object.fromEntries(s.inputNames.map((n) => [n, f[n]])));
      return {
        kl: (o["kl_mean"].data as Float32Array)[0],
        grad: Float32Array.from(o["grad_kl_hook"].data as Float32Array),
      };
    };
    const base = await step(recon);
    // The mean over the unmasked positions, from PyTorch's per-position KL.
    const kl = f32(r.get("kl_per_token")!);
    let num = 0, den = 0;
    for (let i = 0; i < kl.length; i++) (num += mask[i] * kl[i]), (den += mask[i]);
    assert(
      Math.abs(base.kl - num / den) <= 1e-4 * num / den,
      `masked kl ${base.kl} vs ${num / den}`,
    );
    // A central difference along a random direction (fresh each run) against ⟨grad, v⟩. Half of
    // v lies along the gradient: a purely random v over B·T·d coordinates projects on it by only
    // ~‖grad‖, which float32 rounding of kl_mean can swamp (a seed failed so: 5.9e-6 vs 8.0e-6).
    const rng = freshRng("position-mask fd");
    const noise = Float32Array.from({ length: B * T * d }, () => rng.normal());
    const norm = (a: Float32Array) => Math.sqrt(a.reduce((s, e) => s + e * e, 0));
    const along = norm(noise) / Math.max(norm(base.grad), 1e-30);
    const v = noise.map((e, i) => e + along * base.grad[i]);
    // Five-point stencil: truncation O(eps⁴), so float32 rounding sets the error.
    const eps = 2e-3; // v is long (its norm is twice ‖noise‖ ≈ 2·√(B·T·d)): a short step along it
    const at = async (k: number) => (await step(recon.map((a, i) => a + k * eps * v[i]))).kl;
    const fd = (8 * (await at(1)) - 8 * (await at(-1)) - (await at(2)) + (await at(-2))) /
      (12 * eps);
    let dot = 0;
    for (let i = 0; i < v.length; i++) dot += base.grad[i] * v[i];
    assert(
      Math.abs(fd - dot) <= 2e-2 * Math.abs(dot) + 1e-6,
      `directional derivative ${fd} vs ${dot}`,
    );
  } finally {
    await s.release();
  }
});
