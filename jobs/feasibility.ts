// Submit-time feasibility: a job whose sizes cannot fit the GPU adapter's binding limits, the LM
// runtime's memory or the host's memory is refused with the setting and the limit it breaks,
// instead of being accepted and failing (or killing its process) later. The estimates are lower
// bounds of what the job allocates, so a refused job could never have run; a job that passes may
// still fail for a reason counted here (the runner then fails it after a bounded number of tries).
import type { ExecutionProvider } from "../lm/session.ts";
import { MemoryBoundError, microBatchFor, runtimeBudget, WEB_HEAP_BYTES } from "../train/memory.ts";

export type FeasibleKind = "finetune" | "eval" | "experiment";

/** What the job's sizes are checked against. */
export interface Resources {
  /** The GPU adapter's limits (gpu/device.ts AdapterSummary.limits). */
  gpuLimits: Record<string, number>;
  /** Bytes of host memory; jobs may plan to use half of it (llvmpipe's GPU memory is host memory). */
  hostMemoryBytes: number;
  /** The LM's vocabulary, its residual width, and the width of the hook the SAE reads. */
  vocab: number;
  dModel: number;
  dIn?: number;
  /** The model's weights in bytes (its file plus external data). */
  modelBytes: number;
  /** The EP the job's LM will run on. */
  ep: ExecutionProvider;
  /** The SAE the job starts from, when it names a registered one. */
  sae?: { kind: string; dIn: number; dSae: number };
}

export interface Infeasible {
  /** The request field to change, as a dotted path. */
  field: string;
  /** The largest value of that field that fits, or the limit in bytes when no value would. */
  limit: number;
  message: string;
}

/** An eval reads at most this many sequences ... */
export const EVAL_MAX_SEQUENCES = 4096;
/** ... and at most this many tokens (sequences × seq_len), so it ends in minutes, not hours. */
export const EVAL_MAX_TOKENS = 2 ** 22;

/**
 * LM bytes per token of a forward pass, meant as a lower bound: the logits (and their softmax) and
 * the residual stream with its MLP expansion. Measured on tiny-neox (vocab 256, d_model 128) under
 * the wasm EP: RSS grew 13.2 kB a token from 256 to 1024 sequences of 128; this gives 12.3 kB.
 */
export function lmBytesPerToken(vocab: number, dModel: number): number {
  return 4 * (2 * vocab + 20 * dModel);
}

/**
 * Adam's training state of an SAE, counted on the host too: weights, gradients, two moments, and
 * the host copy a checkpoint serialises (five copies of both matrices).
 */
function saeTrainingBytes(dIn: number, dSae: number): number {
  return 5 * 2 * dIn * dSae * 4;
}

const MiB = 2 ** 20;
const fmt = (bytes: number) =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;

interface Shape {
  saeField: string;
  saeKind: string;
  dSae: number;
  batchField: string;
  batchSize: number;
  seqLen: number;
  /** Tokens of activations the MSE phase buffers on the host (0: none). */
  bufferTokens: number;
  /** The job runs KL steps (micro-batched to fit the runtime, train/memory.ts). */
  kl: boolean;
  evalSequences?: { field: string; n: number };
}

function shapeOf(kind: FeasibleKind, cfg: Record<string, unknown>, r: Resources): Shape {
  const num = (k: string, d = 0) => typeof cfg[k] === "number" ? cfg[k] as number : d;
  const batchSize = num("batch_size", 8), seqLen = num("seq_len", 128);
  if (kind === "finetune") {
    const init = (cfg.init ?? {}) as { kind?: string; d_sae?: number };
    const fromScratch = !r.sae;
    const tokens = num("tokens", 262_144), fraction = num("finetune_fraction", 0.05);
    const stepTokens = batchSize * seqLen;
    const steps = Math.max(1, Math.floor(tokens / stepTokens));
    const mseSteps = fromScratch && cfg.kind !== "mse" && cfg.kind !== "e2e"
      ? steps - Math.max(1, Math.round(steps * fraction))
      : fromScratch
      ? steps
      : 0;
    return {
      saeField: r.sae ? "sae" : "init.d_sae",
      saeKind: r.sae?.kind ?? init.kind ?? "topk",
      dSae: r.sae?.dSae ?? init.d_sae ?? 2048,
      batchField: "batch_size",
      batchSize,
      seqLen,
      bufferTokens: fromScratch
        ? Math.min(num("shuffle_buffer_tokens", 65_536), mseSteps * stepTokens)
        : 0,
      evalSequences: { field: "eval_sequences", n: num("eval_sequences", 32) },
      kl: cfg.kind !== "mse",
    };
  }
  // An experiment is as large as its largest arm.
  let batchField = "batch_size", largest = batchSize;
  const arms = kind === "experiment" && Array.isArray(cfg.arms)
    ? cfg.arms as { batch_size?: unknown }[]
    : [];
  arms.forEach((a, i) => {
    if (typeof a.batch_size === "number" && a.batch_size > largest) {
      [batchField, largest] = [`arms.${i}.batch_size`, a.batch_size];
    }
  });
  return {
    saeField: "sae",
    saeKind: r.sae?.kind ?? "topk",
    dSae: r.sae?.dSae ?? 0,
    batchField,
    batchSize: largest,
    seqLen,
    bufferTokens: 0,
    kl: kind === "experiment",
    evalSequences: kind === "eval" ? { field: "sequences", n: num("sequences", 64) } : undefined,
  };
}

/** null when the job fits, else the first setting that does not. */
export function checkFeasible(
  kind: FeasibleKind,
  cfg: Record<string, unknown>,
  r: Resources,
): Infeasible | null {
  const s = shapeOf(kind, cfg, r);
  const d = r.sae?.dIn ?? r.dIn ?? r.dModel;
  const budget = Math.floor(r.hostMemoryBytes / 2);
  const binding = r.gpuLimits.maxStorageBufferBindingSize ?? Infinity;
  const maxBuffer = r.gpuLimits.maxBufferSize ?? Infinity;

  if (s.evalSequences) {
    const { field, n } = s.evalSequences;
    if (n > EVAL_MAX_SEQUENCES) {
      return {
        field,
        limit: EVAL_MAX_SEQUENCES,
        message: `${field} ${n} is over the limit of ${EVAL_MAX_SEQUENCES} sequences an ` +
          `evaluation reads`,
      };
    }
    if (n * s.seqLen > EVAL_MAX_TOKENS) {
      const most = Math.floor(EVAL_MAX_TOKENS / s.seqLen);
      return {
        field,
        limit: most,
        message: `${field} ${n} × seq_len ${s.seqLen} = ${n * s.seqLen} tokens is over the ` +
          `limit of ${EVAL_MAX_TOKENS} tokens an evaluation reads; use ${field} ≤ ${most}`,
      };
    }
  }

  if (s.dSae > 0) {
    // The matmuls bind a whole weight matrix (d_in × d_sae floats) as one storage buffer.
    const matrix = d * s.dSae * 4;
    const gpuLimit = Math.min(binding, maxBuffer);
    if (matrix > gpuLimit) {
      const which = binding <= maxBuffer ? "maxStorageBufferBindingSize" : "maxBufferSize";
      const most = Math.floor(gpuLimit / (d * 4));
      return {
        field: s.saeField,
        limit: most,
        message: `d_sae ${s.dSae} × d_in ${d} needs ${fmt(matrix)} per weight matrix, over this ` +
          `GPU adapter's ${which} of ${fmt(gpuLimit)}; use d_sae ≤ ${most}`,
      };
    }
    const training = saeTrainingBytes(d, s.dSae);
    if (kind !== "eval" && training > budget) {
      const most = Math.floor(budget / saeTrainingBytes(d, 1));
      return {
        field: s.saeField,
        limit: most,
        message: `training an SAE of d_sae ${s.dSae} × d_in ${d} keeps about ${fmt(training)} ` +
          `(weights, gradients, Adam moments, checkpoint copy), over half of this host's ` +
          `${fmt(r.hostMemoryBytes)} of memory; use d_sae ≤ ${most}`,
      };
    }
    // Dense kernels (everything but TopK) hold a whole step's pre-activations in one binding.
    const stepTokens = s.batchSize * s.seqLen;
    if (s.saeKind !== "topk" && stepTokens * s.dSae * 4 > binding) {
      const most = Math.max(1, Math.floor(binding / (s.dSae * 4 * s.seqLen)));
      return {
        field: s.batchField,
        limit: most,
        message: `${s.batchField} ${s.batchSize} × seq_len ${s.seqLen} tokens × d_sae ` +
          `${s.dSae} needs ${fmt(stepTokens * s.dSae * 4)} of ${s.saeKind} pre-activations, ` +
          `over this GPU adapter's maxStorageBufferBindingSize of ${fmt(binding)}; use ` +
          `${s.batchField} ≤ ${most}`,
      };
    }
  }

  if (s.bufferTokens > 0 && s.bufferTokens * d * 4 > budget) {
    const most = Math.floor(budget / (d * 4));
    return {
      field: "shuffle_buffer_tokens",
      limit: most,
      message: `shuffle_buffer_tokens ${s.bufferTokens} × d_model ${d} × 4 bytes = ` +
        `${fmt(s.bufferTokens * d * 4)}, over half of this host's ${fmt(r.hostMemoryBytes)} of ` +
        `memory; use shuffle_buffer_tokens ≤ ${most}`,
    };
  }

  if (s.kl && r.vocab > 0) {
    try {
      microBatchFor(
        {
          batch: s.batchSize,
          seq: s.seqLen,
          vocab: r.vocab,
          dModel: r.dModel,
          modelBytes: r.modelBytes,
        },
        r.ep,
        typeof cfg.micro_batch === "number" ? cfg.micro_batch : undefined,
        runtimeBudget(r.ep, r.hostMemoryBytes),
      );
    } catch (e) {
      if (!(e instanceof MemoryBoundError)) throw e;
      return { field: e.field, limit: e.limit, message: e.message };
    }
  }

  // Forward passes (filling the MSE buffer, the CE-eval) take batch_size sequences at once.
  const perToken = lmBytesPerToken(r.vocab, r.dModel);
  const lm = s.batchSize * s.seqLen * perToken;
  const [limit, where] = r.ep === "wasm"
    ? [
      WEB_HEAP_BYTES - r.modelBytes,
      `ONNX Runtime Web's 4 GiB wasm heap (less the model's ${fmt(r.modelBytes)})`,
    ]
    : r.ep === "webgpu"
    // One buffer holds the logits of the whole batch.
    ? [maxBuffer, "this GPU adapter's maxBufferSize"]
    : r.ep === "cpu"
    ? [budget - r.modelBytes, `half of this host's ${fmt(r.hostMemoryBytes)} of memory`]
    : [Infinity, ""];
  const need = r.ep === "webgpu" ? s.batchSize * s.seqLen * r.vocab * 4 : lm;
  if (need > limit) {
    const per = r.ep === "webgpu" ? s.seqLen * r.vocab * 4 : s.seqLen * perToken;
    const most = Math.max(0, Math.floor(limit / per));
    return {
      field: s.batchField,
      limit: most,
      message: `${s.batchField} ${s.batchSize} × seq_len ${s.seqLen} (vocab ${r.vocab}, d_model ` +
        `${r.dModel}) needs at least ${fmt(need)} of LM activations on the ${r.ep} EP, over ` +
        `${where}; use ${s.batchField} ≤ ${most}`,
    };
  }
  return null;
}
