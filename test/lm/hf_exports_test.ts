// Hugging-Face-shaped exports (tools/python/export_hf_lms.py: Optimum's text-generation and
// -with-past signatures, a merged decoder, fp16 variants, external data) go through loadLm and
// splice-grad (wasm EP; the with-past ones also on WebGPU) and match the PyTorch autograd references; the hook given as a tensor
// name, as resid_post:0 and as a TransformerLens name resolves to the same tensor.
import { assert, assertEquals } from "@std/assert";
import { f32, i64, parseSafetensors } from "../../lib/safetensors.ts";
import { resolveHook } from "../../lm/hooks.ts";
import { loadLm } from "../../lm/load.ts";
import { createSpliceGradSessions, spliceGrad } from "../../lm/splice_grad.ts";
import type { ExecutionProvider } from "../../lm/session.ts";
import { testGpu } from "../util/gpu.ts";
import { relError } from "../util/rand.ts";

const DIR = new URL("../fixtures/hf/", import.meta.url).pathname;

interface Case {
  model: string;
  ref: string;
  /** Metadata key of the hook tensor's name in this model. */
  hookKey?: string;
}

// The fully float16 model is run in float32 (canonicalLm converts the graph); its reference is
// float64 on exactly what the graph holds (weights and float literals rounded to float16, recon
// rounded to float16), so float32 arithmetic is the only difference and the tolerance stays 1e-4
// (measured ≤ 9e-6). Run in float16 arithmetic the logits would differ by ~6.5e-4.
const CASES: Case[] = [
  { model: "gpt2.onnx", ref: "gpt2.reference.safetensors" },
  { model: "gpt2-with-past.onnx", ref: "gpt2.reference.safetensors" },
  { model: "gpt2-merged.onnx", ref: "gpt2.reference.safetensors", hookKey: "hook_tensor_merged" },
  { model: "gpt2-with-past-fp16.onnx", ref: "gpt2-fp16.reference.safetensors" },
  { model: "neox.onnx", ref: "neox.reference.safetensors" },
  { model: "neox-with-past.onnx", ref: "neox.reference.safetensors" },
  { model: "neox-ext/model.onnx", ref: "neox.reference.safetensors" },
  { model: "llama.onnx", ref: "llama.reference.safetensors" },
  { model: "llama-with-past.onnx", ref: "llama.reference.safetensors" },
  { model: "llama-with-past-fp16w.onnx", ref: "llama-fp16w.reference.safetensors" },
];

const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

async function check(c: Case, ep: ExecutionProvider): Promise<void> {
  const { model, signature } = await loadLm(`${DIR}${c.model}`);
  const file = parseSafetensors(await Deno.readFile(`${DIR}${c.ref}`));
  const meta = file.metadata;
  const tensor = meta[c.hookKey ?? "hook_tensor"];
  assert(tensor, `${c.ref} names no hook tensor`);
  const layer = Number(meta.layer ?? 0);
  const specs = [
    tensor,
    `resid_post:${layer}`,
    meta.tl_hook ?? `blocks.${layer}.hook_resid_post`,
  ];
  const resolved = specs.map((s) => resolveHook(model, s));
  assertEquals(resolved, specs.map(() => tensor), `hook specs ${specs.join(", ")}`);
  const mid = meta[c.hookKey ? "hook_mid_tensor_merged" : "hook_mid_tensor"];
  if (mid) assertEquals(resolveHook(model, `blocks.${layer}.hook_resid_mid`), mid);
  const ref = file.tensors;
  const ids = ref.get("input_ids")!;
  const [B, T] = ids.shape;
  const device = ep === "webgpu" ? (await testGpu()).device : undefined;
  const s = await createSpliceGradSessions(model, tensor, { ep, device });
  try {
    const out = await spliceGrad(s, {
      inputIds: i64(ids),
      recon: f32(ref.get("recon")!),
      batch: B,
      seq: T,
    });
    const tol = 1e-4;
    const report: string[] = [];
    for (const [name, got] of Object.entries(out)) {
      const want = ref.get(name);
      assert(want, `reference has no ${name}`);
      assertEquals(got.dims, want.shape, name);
      const e = relError(got.data, f32(want));
      report.push(`${name} ${e.toExponential(1)}`);
      assert(e <= tol, `${c.model} ${name}: relative error ${e} > ${tol}`);
    }
    console.log(`${c.model} ${ep} [${signature.recognised.join("; ")}]: ${report.join(", ")}`);
  } finally {
    await s.release();
  }
}

for (const c of CASES) {
  const ignore = !exists(`${DIR}${c.model}`) || !exists(`${DIR}${c.ref}`);
  for (const ep of ["wasm", "webgpu"] as const) {
    if (ep === "webgpu" && !/past|merged|ext/.test(c.model)) continue;
    Deno.test({
      name: `hf exports: splice-grad matches PyTorch on ${c.model} (${ep} EP)`,
      ignore,
      fn: () => check(c, ep),
    });
  }
}
