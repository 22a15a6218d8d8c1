// Whether a trained SAE is usable: a job whose SAE ended dead (almost no latent fires) or diverged
// (reconstructs worse than the mean of x) fails with that reason instead of registering it.

export interface HealthInput {
  /** Mean active latents per token at the end (the evaluation's where there was one). */
  l0: number;
  /** Fraction of variance unexplained at the end. */
  fvu: number;
  /** Where the numbers come from, for the message ("evaluation", "last training step"). */
  source: string;
  /** Training steps the SAE had. */
  steps: number;
}

export interface Health {
  ok: boolean;
  reason?: string;
}

/** L0 below this counts as dead: under one active latent in 10 tokens. */
export const DEAD_L0 = 0.1;

/**
 * Runs shorter than this are not judged: a smoke test of a few steps may not have beaten the mean
 * yet, and says nothing about the defaults.
 */
export const MIN_JUDGED_STEPS = 32;

export function saeHealth(h: HealthInput): Health {
  if (h.steps < MIN_JUDGED_STEPS) return { ok: true };
  const reasons: string[] = [];
  if (!Number.isFinite(h.l0) || !Number.isFinite(h.fvu)) {
    return { ok: false, reason: `non-finite L0 ${h.l0} or FVU ${h.fvu} (${h.source})` };
  }
  if (h.l0 < DEAD_L0) {
    reasons.push(
      `dead SAE: L0 ${h.l0.toPrecision(3)} < ${DEAD_L0} (${h.source}); lower l1_coefficient, ` +
        `raise target_l0 or lengthen l1_warmup_fraction`,
    );
  }
  if (h.fvu > 1) {
    reasons.push(
      `diverged SAE: FVU ${h.fvu.toPrecision(3)} > 1, worse than predicting the mean ` +
        `(${h.source}); lower the learning rate or check the sparsity settings`,
    );
  }
  return reasons.length ? { ok: false, reason: reasons.join("; ") } : { ok: true };
}
