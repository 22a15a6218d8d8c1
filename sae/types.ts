// The SAE's configuration and weights, in SAELens conventions: W_enc [d_in, d_sae], b_enc [d_sae],
// W_dec [d_sae, d_in], b_dec [d_in], encoder input x − b_dec. Row-major Float32Arrays on the host.

export type SaeKind =
  | "relu"
  | "topk"
  | "batchtopk"
  | "jumprelu"
  | "gated"
  | "matryoshka_batchtopk";

export interface SaeConfig {
  kind: SaeKind;
  dIn: number;
  dSae: number;
  /** Active latents per token (topk) or per token on average (batchtopk). */
  k?: number;
  /** L1 coefficient λ of the decoder-norm-weighted penalty (relu). */
  l1Coefficient?: number;
  /**
   * matryoshka_batchtopk: the nested prefixes' widths (strictly increasing, the last = dSae), as
   * SAELens' matryoshka_widths.
   */
  matryoshkaWidths?: number[];
  /** Where the SAE reads: model name, hook tensor, context size (SAELens metadata). */
  metadata?: {
    model?: string;
    hookName?: string;
    contextSize?: number;
    /** Transcoders: the tensor they predict (SAELens' hook_name_out), hookName being their input. */
    hookNameOut?: string;
  };
  /**
   * A transcoder (sparsify --transcode, SAELens' transcoder): reads the MLP's input, predicts its
   * output; the encoder reads x itself (b_dec is an output bias). `skip`: ŷ gains x·W_skipᵀ.
   */
  transcoder?: { skip: boolean };
}

export interface SaeWeights {
  W_enc: Float32Array;
  b_enc: Float32Array;
  W_dec: Float32Array;
  b_dec: Float32Array;
  /** Per-latent threshold: jumprelu's θ, or batchtopk's single inference threshold (length 1). */
  threshold?: Float32Array;
  /** Skip transcoders: the linear skip [d_out, d_in] (SAELens, sparsify), ŷ += x·W_skipᵀ. */
  W_skip?: Float32Array;
  /**
   * gated (Rajamanoharan et al. 2024): the magnitude path's per-latent log-scale of W_enc's columns
   * and its bias [d_sae] each; b_enc is the gate's bias (SAELens' b_gate).
   */
  r_mag?: Float32Array;
  b_mag?: Float32Array;
}

export interface Sae {
  cfg: SaeConfig;
  weights: SaeWeights;
}
