// The JSON the routes send, as zod schemas: /openapi.json is generated from them, and
// test/routes/openapi_test.ts parses real responses with them, so neither can drift from the
// routes unseen. Times are ISO 8601 strings on the wire (Date.toJSON). Each `id` names the
// schema in components/schemas.
import { z } from "zod";

const Time = z.string().meta({ format: "date-time" });
const Json = z.unknown().describe("JSON");

export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe("stable, machine-readable: invalid_request, not_found, …"),
    message: z.string(),
    details: z.unknown().describe(
      "invalid_request: [{path, message}] per field; in_use: {jobs}; otherwise null",
    ),
  }),
}).meta({ id: "Error" });

export const Deleted = z.object({ deleted: z.string().describe("the id") }).meta({ id: "Deleted" });

const EpStatus = z.object({
  runtime: z.enum(["onnxruntime-node", "onnxruntime-web"]),
  available: z.boolean(),
  reason: z.string().optional(),
});
const RuntimeInfo = z.object({
  name: z.enum(["onnxruntime-node", "onnxruntime-web"]),
  ep: z.enum(["cpu", "cuda", "webgpu", "wasm"]),
});

export const Health = z.object({
  status: z.enum(["ok", "degraded"]),
  gpu: z.object({
    adapter: z.string(),
    software: z.boolean(),
    lost: z.string().nullable(),
    features: z.array(z.string()),
    limits: z.record(z.string(), z.number()),
  }),
  onnxruntime: z.object({
    versions: z.record(z.string(), z.string().nullable()),
    auto: RuntimeInfo,
    eps: z.record(z.string(), EpStatus),
  }),
  sae: z.object({
    auto: z.enum(["webgpu", "cpu"]).describe('where sae_device "auto" trains a plain topk SAE'),
    cpu_kinds: z.string().describe('what sae_device "cpu" trains'),
  }),
  database: z.object({ kind: z.string() }),
  uptimeSeconds: z.number(),
}).meta({ id: "Health" });

export const Model = z.object({
  id: z.string(),
  name: z.string(),
  path: z.string(),
  info: z.looseObject({
    hooks: z.number().int().optional().describe("hook points found when registered"),
    contextLength: z.number().int().nullable().optional(),
    vocab: z.number().int().optional(),
    tokenizer: z.string().optional(),
    signature: z.array(z.string()).optional().describe("what was recognised in the export"),
  }).nullable(),
  builtin: z.boolean(),
  createdAt: Time,
}).meta({ id: "Model" });
export const ModelList = z.object({ models: z.array(Model) }).meta({ id: "ModelList" });

const HookFields = {
  name: z.string().describe("the tensor name"),
  dims: z.array(z.union([z.number(), z.string()])),
  tl_names: z.array(z.string()).describe("TransformerLens names, e.g. blocks.1.hook_resid_post"),
  spec: z.string().nullable().describe("resid_post:<layer>, when the layer is known"),
};
export const Hooks = z.object({
  hooks: z.array(z.object({
    ...HookFields,
    index: z.number().int(),
    layer: z.number().int().optional(),
    tlNames: z.array(z.string()),
  })),
}).meta({ id: "Hooks" });
export const RegisteredModel = Model.extend({
  signature: z.object({
    inputIds: z.string(),
    attentionMask: z.string().optional(),
    positionIds: z.string().optional(),
    logits: z.string(),
    recognised: z.array(z.string()),
  }),
  hooks: z.array(z.object(HookFields)),
}).meta({ id: "RegisteredModel" });

export const Sae = z.object({
  id: z.string(),
  name: z.string(),
  path: z.string(),
  architecture: z.string(),
  dIn: z.number().int(),
  dSae: z.number().int(),
  modelId: z.string().nullable(),
  hook: z.string().nullable(),
  cfg: Json.describe("the SAELens cfg.json"),
  jobId: z.string().nullable().describe("the fine-tune that produced it"),
  createdAt: Time,
}).meta({ id: "Sae" });
export const SaeList = z.object({ saes: z.array(Sae) }).meta({ id: "SaeList" });

const BuiltinDataset = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.literal("builtin"),
  tokenizer: z.string(),
  splits: z.record(z.string(), z.string()),
});
const RegisteredDataset = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.string().describe("the format: text, jsonl, parquet, tokens"),
  path: z.string().nullable(),
  config: Json,
  builtin: z.boolean(),
  createdAt: Time,
});
export const Dataset = z.union([BuiltinDataset, RegisteredDataset]).meta({ id: "Dataset" });
export const DatasetList = z.object({ datasets: z.array(Dataset) }).meta({ id: "DatasetList" });

const JobState = z.enum(["queued", "running", "succeeded", "failed", "cancelled"]);
const JobFields = {
  id: z.string(),
  state: JobState,
  config: Json.describe("the request, defaults filled in"),
  result: Json.describe("null until it succeeds"),
  error: z.string().nullable(),
  createdAt: Time,
  finishedAt: Time.nullable(),
};

export const Finetune = z.object({
  ...JobFields,
  startedAt: Time.nullable(),
  links: z.object({
    self: z.string(),
    events: z.string(),
    metrics: z.string(),
    sae: z.string().nullable().describe("the trained SAE, once it succeeded"),
  }),
}).meta({ id: "Finetune" });
export const FinetuneList = z.object({ finetunes: z.array(Finetune) }).meta({ id: "FinetuneList" });
export const Metrics = z.object({
  metrics: z.array(
    z.object({ step: z.number().int(), tokens: z.number().nullable() }).catchall(Json),
  ),
}).meta({ id: "Metrics" });

export const Eval = z.object({
  ...JobFields,
  links: z.object({ self: z.string(), events: z.string() }),
}).meta({ id: "Eval" });
export const EvalList = z.object({ evals: z.array(Eval) }).meta({ id: "EvalList" });

export const Experiment = z.object({
  id: z.string(),
  name: z.string(),
  state: z.union([JobState, z.literal("unknown")]),
  error: z.string().nullable(),
  config: Json,
  table: z.array(z.record(z.string(), z.union([z.number(), z.string(), z.null()]))).describe(
    "one row per arm or run",
  ),
  arms: z.array(z.object({
    name: z.string(),
    type: z.string(),
    final: z.record(z.string(), z.number()).describe("ceGap, ceRecovered, kl, fvu, l0, …"),
    curve: z.array(z.array(z.number())).describe("[tokens, CE gap]"),
    stability: Json.describe("{encoder, decoder}: [tokens, p25, p50, p75] of cos(column, start)"),
  })),
  createdAt: Time,
  links: z.object({ self: z.string(), events: z.string(), plots: z.array(z.string()) }),
}).meta({ id: "Experiment" });
export const ExperimentList = z.object({ experiments: z.array(Experiment) }).meta({
  id: "ExperimentList",
});

export const EventStream = z.string().describe(
  "Server-Sent Events: `id` (resume from it), `event` (state, progress, metrics, log, result, " +
    "error), `data` (JSON); comments keep the stream alive; it ends with the job",
);
