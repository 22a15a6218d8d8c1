// The fine-tune configuration: one zod schema serves HTTP validation, the OpenAPI document and
// the job runner, so defaults are written once. Defaults follow the paper, scaled to tiny-neox.
import { z } from "zod";

export const SaeInit = z.object({
  kind: z.enum(["relu", "topk", "batchtopk", "jumprelu"]).default("topk"),
  d_sae: z.number().int().min(1).max(1 << 20).default(2048),
  k: z.number().int().min(1).max(256).default(16).describe(
    "active latents per token (topk, batchtopk)",
  ),
  l1_coefficient: z.number().min(0).default(5).describe("λ of the decoder-norm-weighted L1 (relu)"),
});

export const FinetuneConfig = z.object({
  kind: z.enum(["mse", "kl_mse", "e2e", "kl_only"]).describe(
    "mse: the MSE-only control; kl_mse: 0.5·(MSE + α·KL), α = MSE/(KL+1e-8) detached (the paper); " +
      "e2e: MSE + KL from step 0 (Braun et al.); kl_only: KL alone (paper App. B)",
  ),
  model: z.string().min(1).default("tiny-neox"),
  hook: z.string().min(1).optional().describe(
    "hook tensor name or resid_post:<layer>; default: the SAE's hook, else /blocks.1/Add_2_output_0 on tiny-neox",
  ),
  sae: z.string().min(1).optional().describe(
    "id of the SAE to fine-tune; omit to train one from scratch",
  ),
  init: SaeInit.optional().describe("architecture of a from-scratch SAE"),
  dataset: z.string().min(1).default("brown"),
  tokens: z.number().int().min(1).max(1e10).default(262_144).describe("training tokens in all"),
  finetune_fraction: z.number().gt(0).max(1).default(0.05).describe(
    "from scratch: the KL objective runs on this last fraction of the tokens (paper: 5%)",
  ),
  batch_size: z.number().int().min(1).max(4096).default(8).describe("sequences per step"),
  seq_len: z.number().int().min(2).max(1 << 16).default(128),
  lr: z.number().gt(0).max(1).default(5e-5),
  pretrain_lr: z.number().gt(0).max(1).default(1e-3).describe(
    "from scratch: the LR of the MSE phase before the fine-tune",
  ),
  weight_decay: z.number().min(0).max(1).default(0.01),
  grad_clip: z.number().gt(0).default(1.0),
  warmup_steps: z.number().int().min(0).default(0),
  decay_fraction: z.number().min(0).max(1).default(1.0).describe(
    "LR decays linearly to 0 over this last fraction of the steps",
  ),
  l1_target_l0: z.number().gt(0).optional().describe(
    "relu: hold L0 here with the App. E controller (default: the SAE's L0 before the fine-tune)",
  ),
  l1_controller: z.boolean().default(true),
  decoder_constraint: z.boolean().default(false).describe(
    "unit-norm decoder rows, parallel gradient removed",
  ),
  skip_first_positions: z.number().int().min(0).default(0).describe(
    "the first positions of each sequence keep their clean activations and are left out of the " +
      "KL mean, in training and in the final CE-eval",
  ),
  normalize_activations: z.enum(["none", "expected_average_only_in"]).default("none").describe(
    "from scratch: train on s·x with E‖s·x‖² = d_in (s estimated on training text) and fold s " +
      "into the saved weights, so the saved SAE reads raw activations (SAELens' option)",
  ),
  shuffle_buffer_tokens: z.number().int().min(0).max(1 << 26).default(65_536).describe(
    "from scratch: the MSE phase trains on activations shuffled in a buffer of this many tokens " +
      "(0: in sequence order, as the fine-tune arms)",
  ),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
  metrics_every: z.number().int().min(1).default(8),
  checkpoint_every: z.number().int().min(1).default(64),
  eval_sequences: z.number().int().min(0).max(100_000).default(32).describe(
    "held-out sequences for the CE-eval at the end (0: none)",
  ),
  ep: z.enum(["auto", "wasm", "webgpu"]).default("auto").describe(
    "ONNX Runtime EP for the LM: auto = webgpu on a hardware adapter, wasm on a software one",
  ),
}).strict();

export type FinetuneConfig = z.infer<typeof FinetuneConfig>;

export function stepsOf(cfg: Pick<FinetuneConfig, "tokens" | "batch_size" | "seq_len">): number {
  return Math.max(1, Math.floor(cfg.tokens / (cfg.batch_size * cfg.seq_len)));
}
