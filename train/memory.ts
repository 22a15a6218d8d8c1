// How much memory one run of the KL-step session needs, and how many sequences a run can take
// under the runtime's limit. The logits dominate: each [tokens, V] float tensor is 412 MB at
// Pythia's 2 × 1024 tokens and 50k vocabulary, 2.1 GB at Gemma-2's 256k. The KL step holds about
// eight of them at its peak (clean and spliced logits and log-probs, p_clean, the KL terms, and
// the backward's log-softmax gradient and logits gradient); ONNX Runtime's planner reuses the
// rest. The weights are held twice (the model bytes handed over and the session's copy).
import type { ModelProto } from "../lm/onnx.ts";
import { type ExecutionProvider, WEB_MODEL_MAX_BYTES } from "../lm/session.ts";
import { inferShapes } from "../lm/shapes.ts";
import { logitsName } from "../lm/surgery.ts";

/** [tokens, V] float tensors alive at once in the KL step (forward, loss and backward). */
export const VOCAB_TENSORS_AT_PEAK = 8;
/** ONNX Runtime Web's wasm heap is 32-bit (the WebGPU EP loads models through it too). */
export const WEB_HEAP_BYTES = WEB_MODEL_MAX_BYTES;

export interface StepShape {
  /** Sequences and positions of one step. */
  batch: number;
  seq: number;
  vocab: number;
  dModel: number;
  /** Bytes of the LM's weights. */
  modelBytes: number;
}

/** Bytes one KL-step run over `sequences` sequences needs at its peak. */
export function klStepBytes(s: StepShape, sequences: number): number {
  const tokens = sequences * s.seq;
  const vocab = VOCAB_TENSORS_AT_PEAK * tokens * s.vocab * 4;
  // Residual-stream-sized tensors of the two suffixes and their backward, generously.
  const stream = 64 * tokens * s.dModel * 4;
  return vocab + stream + 2 * s.modelBytes;
}

/** The bytes a runtime can give one session: the wasm heap, or a share of host memory. */
export function runtimeBudget(ep: ExecutionProvider, hostBytes = hostMemory()): number {
  if (ep === "wasm" || ep === "webgpu") return WEB_HEAP_BYTES;
  return Math.floor(0.6 * hostBytes);
}

function hostMemory(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return 8 * 2 ** 30;
  }
}

export class MemoryBoundError extends Error {
  override name = "MemoryBoundError";
  constructor(message: string, readonly field: string, readonly limit: number) {
    super(message);
  }
}

const gb = (b: number) => `${(b / 2 ** 30).toFixed(2)} GB`;

/**
 * The most sequences per KL-step run (≤ batch) that fit `budget`; `asked` (micro_batch) is
 * checked instead when given. A step that cannot fit even one sequence is an error naming the
 * setting to lower.
 */
export function microBatchFor(
  s: StepShape,
  ep: ExecutionProvider,
  asked?: number,
  budget = runtimeBudget(ep),
): number {
  const runtime = ep === "wasm" || ep === "webgpu"
    ? `ONNX Runtime Web's ${
      gb(WEB_HEAP_BYTES)
    } wasm heap (ep "${ep}"; the native ep "cpu" or "cuda" has no such limit)`
    : `the ${gb(budget)} this machine gives one session`;
  if (asked !== undefined) {
    const need = klStepBytes(s, asked);
    if (need > budget) {
      throw new MemoryBoundError(
        `micro_batch ${asked} × seq_len ${s.seq} needs about ${gb(need)} in the KL step ` +
          `(vocabulary ${s.vocab}), more than ${runtime}; lower micro_batch`,
        "micro_batch",
        budget,
      );
    }
    return asked;
  }
  for (let m = s.batch; m >= 1; m--) if (klStepBytes(s, m) <= budget) return m;
  const need = klStepBytes(s, 1);
  throw new MemoryBoundError(
    `one sequence of seq_len ${s.seq} needs about ${gb(need)} in the KL step (vocabulary ` +
      `${s.vocab}, model ${gb(s.modelBytes)}), more than ${runtime}; lower seq_len`,
    "seq_len",
    budget,
  );
}

/** The step's shape for `model`: its vocabulary (the logits' last dim) and weight bytes. */
export function stepShapeOf(
  model: ModelProto,
  o: { batch: number; seq: number; dModel: number },
): StepShape {
  const logits = inferShapes(model).get(logitsName(model));
  const vocab = Number(logits?.dims.at(-1));
  if (!Number.isInteger(vocab)) {
    throw new Error(`the vocabulary size (the logits' last dim) of the model is not known`);
  }
  let modelBytes = 0;
  for (const t of model.graph?.initializer ?? []) modelBytes += t.rawData?.byteLength ?? 0;
  return { ...o, vocab, modelBytes };
}
