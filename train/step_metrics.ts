// What a training step reports, one row per SAE: the metrics stream, the job's record and the
// live page read these fields.
export interface StepMetrics {
  step: number;
  tokens: number;
  mse: number;
  kl: number | null;
  alpha: number | null;
  loss: number;
  l0: number;
  lr: number;
  gradNorm: number;
  aux: number;
  deadLatents: number;
  l1Lambda: number | null;
  tokensPerSecond: number;
  /** mse / the batch's variance of x about its mean (in the space the SAE reads). */
  fvu?: number;
  /** Dead latents / d_sae (the trainer's dead window), where the trainer knows d_sae. */
  deadFraction?: number;
}
