// Shared by the splice-grad tests: run splice-grad on a reference file's inputs and compare every
// tensor with PyTorch autograd's answers (relative error ‖a−b‖/‖b‖).
import { assert } from "@std/assert";
import { decodeModel } from "../../lm/onnx.ts";
import { f32, i64, parseSafetensors } from "../../lib/safetensors.ts";
import { createSpliceGradSessions, spliceGrad } from "../../lm/splice_grad.ts";
import type { ExecutionProvider } from "../../lm/session.ts";
import { relError } from "../util/rand.ts";

export async function checkSpliceGrad(
  modelUrl: URL,
  refUrl: URL,
  hook: string | null,
  ep: ExecutionProvider,
  device?: GPUDevice,
  tol = 1e-4,
): Promise<void> {
  const model = decodeModel(await Deno.readFile(modelUrl));
  const file = parseSafetensors(await Deno.readFile(refUrl));
  const ref = file.tensors;
  const hookName = hook ?? file.metadata.hook_tensor;
  assert(hookName, "no hook given and the reference names none");
  const ids = ref.get("input_ids")!;
  const [B, T] = ids.shape;
  const s = await createSpliceGradSessions(model, hookName, { ep, device });
  try {
    const out = await spliceGrad(s, {
      inputIds: i64(ids),
      recon: f32(ref.get("recon")!),
      batch: B,
      seq: T,
    });
    const report: string[] = [];
    for (const [name, got] of Object.entries(out)) {
      const want = ref.get(name);
      assert(want, `reference has no ${name}`);
      assert(
        got.dims.join() === want.shape.join(),
        `${name}: dims [${got.dims}] vs [${want.shape}]`,
      );
      const e = relError(got.data, f32(want));
      report.push(`${name} ${e.toExponential(2)}`);
      assert(e <= tol, `${ep} ${name}: relative error ${e} > ${tol}`);
    }
    console.log(`${ep}: ${report.join(", ")}`);
  } finally {
    await s.release();
  }
}
