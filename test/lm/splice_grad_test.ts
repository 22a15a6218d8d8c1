// DONE criterion of the LM toolkit: splice-grad on tiny-neox's fixture inputs matches PyTorch
// autograd's reference.safetensors to relative error ≤ 1e-4 on every tensor, on both EPs.
import { assert } from "@std/assert";
import { decodeModel } from "../../lm/onnx.ts";
import { parseSafetensors } from "../../lib/safetensors.ts";
import { createSpliceGradSessions, spliceGrad } from "../../lm/splice_grad.ts";
import type { ExecutionProvider } from "../../lm/session.ts";
import { testGpu } from "../util/gpu.ts";
import { relError } from "../util/rand.ts";

const dir = new URL("../../fixtures/tiny-neox/", import.meta.url);
const HOOK = "/blocks.1/Add_2_output_0";

async function check(ep: ExecutionProvider, device?: GPUDevice) {
  const model = decodeModel(await Deno.readFile(new URL("tiny-neox.onnx", dir)));
  const ref = parseSafetensors(await Deno.readFile(new URL("reference.safetensors", dir))).tensors;
  const ids = ref.get("input_ids")!;
  const recon = ref.get("recon")!;
  const [B, T] = ids.shape;
  const s = await createSpliceGradSessions(model, HOOK, { ep, device });
  try {
    const out = await spliceGrad(s, {
      inputIds: new BigInt64Array(ids.bytes.buffer, ids.bytes.byteOffset, B * T),
      recon: new Float32Array(
        recon.bytes.buffer,
        recon.bytes.byteOffset,
        recon.bytes.byteLength / 4,
      ),
      batch: B,
      seq: T,
    });
    const report: string[] = [];
    for (const [name, got] of Object.entries(out)) {
      const want = ref.get(name)!;
      assert(want, `reference has no ${name}`);
      assert(
        got.dims.join() === want.shape.join(),
        `${name}: dims [${got.dims}] vs [${want.shape}]`,
      );
      const w = new Float32Array(
        want.bytes.buffer,
        want.bytes.byteOffset,
        want.bytes.byteLength / 4,
      );
      const e = relError(got.data, w);
      report.push(`${name} ${e.toExponential(2)}`);
      assert(e <= 1e-4, `${ep} ${name}: relative error ${e} > 1e-4`);
    }
    console.log(`${ep}: ${report.join(", ")}`);
  } finally {
    await s.release();
  }
}

Deno.test("splice-grad matches the PyTorch reference on tiny-neox (wasm EP)", async () => {
  await check("wasm");
});

Deno.test("splice-grad matches the PyTorch reference on tiny-neox (WebGPU EP)", async () => {
  const gpu = await testGpu();
  await check("webgpu", gpu.device);
});
