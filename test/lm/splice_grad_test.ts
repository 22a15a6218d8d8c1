// DONE criterion of the LM toolkit: splice-grad on tiny-neox's fixture inputs matches PyTorch
// autograd's reference.safetensors to relative error ≤ 1e-4 on every tensor, on both EPs; and the
// same on small GPT-2- and Llama-style torch.onnx exports (tools/python/export_test_lms.py).
import { testGpu } from "../util/gpu.ts";
import { checkSpliceGrad } from "./splice_check.ts";

const neox = new URL("../../fixtures/tiny-neox/", import.meta.url);
const exports = new URL("../fixtures/lm-export/", import.meta.url);
const CASES = [
  {
    name: "tiny-neox",
    model: new URL("tiny-neox.onnx", neox),
    ref: new URL("reference.safetensors", neox),
    hook: "/blocks.1/Add_2_output_0",
  },
  {
    name: "gpt2-mini export",
    model: new URL("gpt2-mini.onnx", exports),
    ref: new URL("gpt2-mini.reference.safetensors", exports),
    hook: null,
  },
  {
    name: "llama-mini export",
    model: new URL("llama-mini.onnx", exports),
    ref: new URL("llama-mini.reference.safetensors", exports),
    hook: null,
  },
];

for (const c of CASES) {
  Deno.test(`splice-grad matches the PyTorch reference: ${c.name} (wasm EP)`, async () => {
    await checkSpliceGrad(c.model, c.ref, c.hook, "wasm");
  });
  Deno.test(`splice-grad matches the PyTorch reference: ${c.name} (WebGPU EP)`, async () => {
    const gpu = await testGpu();
    await checkSpliceGrad(c.model, c.ref, c.hook, "webgpu", gpu.device);
  });
}
