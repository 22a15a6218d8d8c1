// Memory bounds of the KL step (train/memory.ts) at the shapes users run: Pythia-160M at the
// paper's 2 × 1024 tokens fits ONNX Runtime Web's 4 GB heap one sequence at a time; Gemma-2's
// 256k vocabulary does not fit it at all and is refused naming seq_len and the native EPs; a
// micro_batch that cannot fit is refused naming micro_batch.
import { assertEquals, assertThrows } from "@std/assert";
import {
  klStepBytes,
  MemoryBoundError,
  microBatchFor,
  type StepShape,
} from "../../train/memory.ts";
import { loadModel } from "../../lm/onnx.ts";
import { stepShapeOf } from "../../train/memory.ts";

const pythia: StepShape = { batch: 2, seq: 1024, vocab: 50304, dModel: 768, modelBytes: 650e6 };
const gemma: StepShape = { batch: 2, seq: 1024, vocab: 256000, dModel: 2304, modelBytes: 10.5e9 };
const GB = 2 ** 30;

Deno.test("memory: Pythia-160M at 2 × 1024 runs one sequence at a time on the Web runtime", () => {
  assertEquals(microBatchFor(pythia, "wasm"), 1);
  assertEquals(microBatchFor(pythia, "cpu", undefined, 16 * GB), 2);
  // The estimate grows with the vocabulary tensors: 8 × tokens × V floats dominate.
  const big = klStepBytes(pythia, 2), small = klStepBytes(pythia, 1);
  assertEquals(Math.round((big - small) / (8 * 1024 * 50304 * 4 + 64 * 1024 * 768 * 4)), 1);
});

Deno.test("memory: a step that cannot fit is refused naming the setting to lower", () => {
  const e = assertThrows(() => microBatchFor(gemma, "webgpu"), MemoryBoundError);
  assertEquals(e.field, "seq_len");
  assertEquals(/"cpu" or "cuda"/.test(e.message), true, e.message);
  assertEquals(microBatchFor(gemma, "cpu", undefined, 64 * GB), 2);
  const m = assertThrows(() => microBatchFor(pythia, "wasm", 2), MemoryBoundError);
  assertEquals(m.field, "micro_batch");
});

Deno.test("memory: the step shape is read off the model (tiny-neox: vocabulary 256)", async () => {
  const model = await loadModel(
    new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
  );
  const s = stepShapeOf(model, { batch: 8, seq: 128, dModel: 128 });
  assertEquals(s.vocab, 256);
  assertEquals(s.modelBytes > 1e5, true);
  assertEquals(microBatchFor(s, "wasm"), 8);
});
