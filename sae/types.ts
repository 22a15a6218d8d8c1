// The SAE's configuration and weights, in SAELens conventions: W_enc [d_in, d_sae], b_enc [d_sae],
// W_dec [d_sae, d_in], b_dec [d_in], encoder input x − b_dec. Row-major Float32Arrays on the host.

export type SaeKind = "relu" | "topk" | "batchtopk" | "jumprelu";

export interface SaeConfig {
  kind: SaeKind;
  dIn: number;
  dSae: number;
  /** Active latents per token (topk) or per token on average (batchtopk). */
  k?: number;
  /** L1 coefficient λ of the decoder-norm-weighted penalty (relu). */
  l1Coefficient?: number;
  /** Where the SAE reads: model name, hook tensor, context size (SAELens metadata). */
  metadata?: { model?: string; hookName?: string; contextSize?: number };
}

export interface SaeWeights {
  W_enc: Float32Array;
  b_enc: Float32Array;
  W_dec: Float32Array;
  b_dec: Float32Array;
  /** Per-latent threshold: jumprelu's θ, or batchtopk's single inference threshold (length 1). */
  threshold?: Float32Array;
}

export interface Sae {
  cfg: SaeConfig;
  weights: SaeWeights;
}
