// The experiment API's input: arms that start from one SAE and see identical data in identical
// order (paper Appendices B–D, F, H), or a sweep of one arm over one parameter; or a preset that
// trains its own SAEs (kinds_frontier: every kind from scratch at several sparsities).
import { z } from "zod";
import { KindsFrontierConfig } from "../experiments/kinds_frontier.ts";

export const ARM_TYPES = [
  "mse",
  "kl_mse",
  "kl_only",
  "e2e",
  "sae_lora",
  "linear_skip",
  "mlp_skip",
  "lm_lora",
  "two_stage",
] as const;

export const ArmSpec = z.object({
  type: z.enum(ARM_TYPES).describe(
    "mse / kl_mse / kl_only / e2e train the SAE; sae_lora: LoRA on W_enc and W_dec; linear_skip " +
      "(y = x̂ + U·V·x̂), mlp_skip (y = x̂ + W2·ReLU(W1·x̂ + b1) + b2) and lm_lora (LoRA on the LM " +
      "after the hook) train an adapter with the SAE frozen; two_stage: kl_mse on the first half " +
      "of the tokens, then a linear skip on the fine-tuned SAE",
  ),
  name: z.string().min(1).max(80).optional(),
  rank: z.number().int().min(1).max(1024).default(16).describe("LoRA / linear-skip rank"),
  alpha: z.number().gt(0).default(16).describe("LoRA scale numerator (scale = alpha / rank)"),
  hidden: z.number().int().min(1).max(16384).default(128).describe("MLP skip hidden width"),
  dropout: z.number().min(0).lt(1).default(0).describe(
    "sae_lora: dropout of the LoRA path's input features (one mask per step)",
  ),
  lr: z.number().gt(0).max(1).optional().describe("this arm's LR (default: the experiment's)"),
  batch_size: z.number().int().min(1).max(4096).optional(),
  tokens: z.number().int().min(1).optional(),
  k: z.number().int().min(1).max(256).optional().describe("TopK SAEs: k used by this arm"),
  layers: z.enum(["after_hook", "all"]).default("after_hook").describe(
    "lm_lora: adapt the blocks after the hook, or all blocks (TopK SAEs; refused for ReLU and " +
      "JumpReLU, where adapters before the hook can lower the loss by changing sparsity)",
  ),
}).strict();
export type ArmSpec = z.infer<typeof ArmSpec>;

export const SWEEP_PARAMETERS = ["batch_size", "rank", "tokens", "k", "lr"] as const;

export const ExperimentConfig = z.object({
  preset: z.undefined().optional().describe("absent: the arms or sweep given here"),
  name: z.string().min(1).max(200).default("experiment"),
  sae: z.string().min(1).describe("id of the SAE every arm starts from"),
  model: z.string().min(1).default("tiny-neox"),
  hook: z.string().min(1).optional().describe("default: the SAE's hook"),
  dataset: z.string().min(1).default("brown"),
  arms: z.array(ArmSpec).max(16).default([]),
  sweep: z.object({
    parameter: z.enum(SWEEP_PARAMETERS),
    values: z.array(z.number().positive()).min(1).max(16),
    arm: ArmSpec,
  }).strict().optional().describe("adds one arm per value, the given arm with the parameter set"),
  tokens: z.number().int().min(1).max(1e10).default(65_536).describe("training tokens per arm"),
  batch_size: z.number().int().min(1).max(4096).default(8),
  seq_len: z.number().int().min(2).max(1 << 16).default(128),
  lr: z.number().gt(0).max(1).default(2e-4),
  adapter_lr: z.number().gt(0).max(1).default(1e-3).describe("LR of adapter arms"),
  weight_decay: z.number().min(0).max(1).default(0.01),
  grad_clip: z.number().gt(0).default(1),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(1),
  eval_sequences: z.number().int().min(1).max(100_000).default(32),
  curve_points: z.number().int().min(0).max(64).default(4).describe(
    "CE-gap evaluations during each arm (on curve_sequences held-out sequences)",
  ),
  curve_sequences: z.number().int().min(1).max(10_000).default(8),
  stability_every: z.number().int().min(1).default(16).describe(
    "steps between weight-stability samples (App. H)",
  ),
  ep: z.enum(["auto", "cpu", "cuda", "webgpu", "wasm"]).default("auto"),
}).strict().refine((c) => c.arms.length > 0 || c.sweep, {
  message: "give at least one arm, or a sweep",
  path: ["arms"],
});
export type ExperimentConfig = z.infer<typeof ExperimentConfig>;

export const KindsFrontierPreset = z.object({
  preset: z.literal("kinds_frontier").describe(
    "every SAE kind trained from scratch at several sparsities on identical data, MSE-only and " +
      "KL+MSE; table and CE-gap-vs-L0 / FVU-vs-L0 plots",
  ),
  name: z.string().min(1).max(200).default("kinds_frontier"),
  ...KindsFrontierConfig.shape,
}).strict();
export type KindsFrontierPreset = z.infer<typeof KindsFrontierPreset>;

/** What `POST /experiments` takes: arms from one SAE, or a preset named by `preset`. */
export const ExperimentRequest = z.discriminatedUnion("preset", [
  KindsFrontierPreset,
  ExperimentConfig,
]);
export type ExperimentRequest = z.infer<typeof ExperimentRequest>;

/** The arms to run: the listed ones, then the sweep's, each with a unique name. */
export function expandArms(cfg: ExperimentConfig): (ArmSpec & { name: string })[] {
  const arms: ArmSpec[] = [...cfg.arms];
  if (cfg.sweep) {
    for (const v of cfg.sweep.values) {
      arms.push({
        ...cfg.sweep.arm,
        [cfg.sweep.parameter]: v,
        name: `${cfg.sweep.arm.name ?? cfg.sweep.arm.type} ${cfg.sweep.parameter}=${v}`,
      });
    }
  }
  const seen = new Map<string, number>();
  return arms.map((a) => {
    const base = a.name ??
      (["sae_lora", "linear_skip", "lm_lora"].includes(a.type) ? `${a.type} r=${a.rank}` : a.type);
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return { ...a, name: n > 1 ? `${base} #${n}` : base };
  });
}
