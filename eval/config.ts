// The CE-eval request: one zod schema for HTTP validation, the OpenAPI document and the job.
import { z } from "zod";

export const EvalConfig = z.object({
  model: z.string().min(1).default("tiny-neox"),
  sae: z.string().min(1).describe("id of a registered SAE"),
  hook: z.string().min(1).optional().describe(
    "tensor name or resid_post:<layer>; default: the SAE's hook",
  ),
  dataset: z.string().min(1).default("brown"),
  split: z.enum(["train", "validation"]).default("validation"),
  sequences: z.number().int().min(1).max(4096).default(64).describe(
    "held-out sequences to evaluate: at most 4096, and sequences × seq_len at most 2^22 " +
      "(4,194,304) tokens, so an evaluation ends in minutes on the one worker",
  ),
  batch_size: z.number().int().min(1).max(4096).default(8),
  seq_len: z.number().int().min(2).max(1 << 16).default(128),
  skip_first_positions: z.number().int().min(0).default(0),
  exclude_tokens: z.array(z.number().int().min(0)).default([]).describe("BOS/EOS/pad ids left out"),
  ep: z.enum(["auto", "cpu", "cuda", "webgpu", "wasm"]).default("auto"),
}).strict();
export type EvalConfig = z.infer<typeof EvalConfig>;
