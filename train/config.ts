// The fine-tune configuration: one zod schema serves HTTP validation, the OpenAPI document and
// the job runner, so defaults are written once. Defaults follow the paper, scaled to tiny-neox.
import { z } from "zod";
import { checkWidths } from "../sae/matryoshka_widths.ts";

export const SaeInit = z.object({
  kind: z.enum(["relu", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk", "gated"]).default(
    "topk",
  ),
  d_sae: z.number().int().min(1).max(1 << 20).default(2048),
  k: z.number().int().min(1).max(256).default(16).describe(
    "active latents per token (topk, batchtopk)",
  ),
  l1_coefficient: z.number().min(0).optional().describe(
    "relu (gated: on the gate's ReLU): λ of the decoder-norm-weighted L1, jumprelu: λ of the L0 " +
      "penalty, in this loss's " +
      "units (MSE a mean over elements). Default, scale-free: relu rms/d_in (SAELens' λ = 1 on " +
      "normalised activations, its MSE summed over d_in), jumprelu 0.1·rms²/target_l0, rms = " +
      "√(E‖x‖²/d_in) of what the SAE reads; both are then driven toward target_l0 by the L1 " +
      "controller",
  ),
  target_l0: z.number().gt(0).max(4096).default(32).describe(
    "relu, jumprelu, gated: the L0 the L1 controller holds from scratch (MSE phase and fine-tune)",
  ),
  l1_warmup_fraction: z.number().min(0).max(1).default(0.05).describe(
    "relu, jumprelu: the sparsity coefficient rises linearly from 0 over this first fraction " +
      "of the MSE phase (SAELens' l1_warm_up_steps)",
  ),
  threshold_start_fraction: z.number().min(0).lt(1).default(0.5).describe(
    "batchtopk: the inference threshold averages the batches' smallest selected activation " +
      "only after this fraction of the MSE phase (dictionary_learning's threshold_start_step)",
  ),
  matryoshka_widths: z.array(z.number().int().min(1)).min(1).max(64).optional().describe(
    "matryoshka_batchtopk: the nested prefixes' widths, strictly increasing, the last = d_sae " +
      "(SAELens' matryoshka_widths); default the ladder d_sae/16, /8, /4, /2, d_sae",
  ),
  transcoder: z.enum(["none", "transcoder", "skip_transcoder"]).default("none").describe(
    "transcoder: the SAE reads an MLP's input and predicts its output, and the fine-tune's LM " +
      "runs with the MLP's output replaced (sparsify --transcode, SAELens' transcoder); " +
      "skip_transcoder adds a trained linear skip x·W_skipᵀ (zero at init). The MLP is given by " +
      "hook = mlp:<layer>, or hook = its input and hook_out = its output. From scratch: topk " +
      "or batchtopk",
  ),
}).superRefine((init, ctx) => {
  // Checked here so that POST /finetunes answers 400, not a job that fails at its first step.
  const w = init.matryoshka_widths;
  if (!w) return;
  try {
    if (init.kind !== "matryoshka_batchtopk") {
      throw new Error(`only matryoshka_batchtopk has prefixes, not ${init.kind}: leave it out`);
    }
    checkWidths(w, init.d_sae, "matryoshka_widths");
  } catch (e) {
    ctx.addIssue({ code: "custom", path: ["matryoshka_widths"], message: (e as Error).message });
  }
});

export const FinetuneConfig = z.object({
  kind: z.enum(["mse", "kl_mse", "e2e", "kl_only"]).describe(
    "mse: the MSE-only control; kl_mse: 0.5·(MSE + α·KL), α = MSE/(KL+1e-8) detached (the paper); " +
      "e2e: MSE + KL from step 0 (Braun et al.); kl_only: KL alone (paper App. B)",
  ),
  model: z.string().min(1).default("tiny-neox"),
  hook: z.string().min(1).optional().describe(
    "hook tensor name or resid_post:<layer>; default: the SAE's hook, else /blocks.1/Add_2_output_0 on tiny-neox. " +
      "Transcoders: mlp:<layer> (the block's MLP found by structure: its input after the norm, " +
      "its output before the residual Add), or the MLP's input (blocks.L.ln2.hook_normalized " +
      "or a tensor name) with hook_out",
  ),
  hook_out: z.string().min(1).optional().describe(
    "transcoders: the MLP's output (blocks.L.hook_mlp_out or a tensor name) when hook names " +
      "its input; SAELens' hook_name_out",
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
  micro_batch: z.number().int().min(1).optional().describe(
    "sequences per run of the LM's KL step (default: what fits the runtime's memory, up to " +
      "batch_size); micro-batches' gradients add up to the whole batch's",
  ),
  lr: z.number().gt(0).max(1).default(5e-5),
  pretrain_lr: z.number().gt(0).max(1).optional().describe(
    "from scratch: the LR of the MSE phase before the fine-tune (default 1e-3; relu and " +
      "jumprelu 3e-3)",
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
  l1_controller_rate: z.number().gt(0).max(0.5).default(0.02).describe(
    "from scratch, relu: the MSE phase's controller step (λ × (1 ± rate) a step); the " +
      "fine-tune keeps the paper's 0.1%. jumprelu's MSE phase uses a signed proportional " +
      "controller instead (train/l1_controller.ts)",
  ),
  decoder_constraint: z.boolean().default(false).describe(
    "unit-norm decoder rows, parallel gradient removed (a gated SAE from scratch: always, as " +
      "the paper and dictionary_learning train it)",
  ),
  skip_first_positions: z.number().int().min(0).default(0).describe(
    "the first positions of each sequence keep their clean activations and are left out of the " +
      "KL mean, in training and in the final CE-eval",
  ),
  normalize_activations: z.enum(["none", "expected_average_only_in"]).optional().describe(
    "from scratch: train on s·x with E‖s·x‖² = d_in (s estimated on training text) and fold s " +
      "into the saved weights, so the saved SAE reads raw activations (SAELens' option). " +
      "Default: expected_average_only_in for relu and jumprelu (their λ, θ and bandwidth " +
      "defaults are on that scale), none for topk and batchtopk",
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
  ep: z.enum(["auto", "cpu", "cuda", "webgpu", "wasm"]).default("auto").describe(
    "ONNX Runtime EP for the LM: cpu/cuda on the native runtime, webgpu/wasm on ONNX Runtime " +
      "Web; auto = cuda where its libraries load, else cpu, else wasm",
  ),
  sae_device: z.enum(["auto", "webgpu", "cpu"]).default("auto").describe(
    "where the SAE trains: webgpu (the WGSL kernels) or cpu (the native ONNX Runtime's CPU EP " +
      "and JS; plain topk SAEs only, not transcoders); auto = cpu where the WebGPU adapter is a " +
      "software one (llvmpipe) and the SAE is a plain topk SAE, else webgpu",
  ),
}).strict();

export type FinetuneConfig = z.infer<typeof FinetuneConfig>;

export function stepsOf(cfg: Pick<FinetuneConfig, "tokens" | "batch_size" | "seq_len">): number {
  return Math.max(1, Math.floor(cfg.tokens / (cfg.batch_size * cfg.seq_len)));
}
