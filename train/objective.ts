// The scalar algebra of the fine-tune objectives (paper Eq. 8–9). The kernels produce ∂mse/∂x̂
// and the LM's suffix session produces ∂kl/∂x̂; these functions say how to weight the two.

export type Objective = "mse" | "kl_mse" | "e2e" | "kl_only";

export const ALPHA_EPS = 1e-8;

export interface ObjectiveWeights {
  /** Weight of ∂mse/∂x̂ in the gradient sent to the SAE. */
  mse: number;
  /** Weight of ∂kl/∂x̂. */
  kl: number;
  /** The balancing factor (kl_mse only; 1 otherwise). Detached: no gradient flows through it. */
  alpha: number;
  /** The loss value reported. */
  loss: number;
}

/**
 * kl_mse: loss = 0.5·(mse + α·kl) with α = mse/(kl + 1e-8) recomputed every batch and detached.
 * e2e (Braun et al.): loss = mse + kl from the first step, unbalanced. kl_only: loss = kl (Appendix B).
 * mse: the control arm.
 */
export function objectiveWeights(objective: Objective, mse: number, kl: number): ObjectiveWeights {
  switch (objective) {
    case "mse":
      return { mse: 1, kl: 0, alpha: 0, loss: mse };
    case "kl_mse": {
      const alpha = mse / (kl + ALPHA_EPS);
      return { mse: 0.5, kl: 0.5 * alpha, alpha, loss: 0.5 * (mse + alpha * kl) };
    }
    case "e2e":
      return { mse: 1, kl: 1, alpha: 1, loss: mse + kl };
    case "kl_only":
      return { mse: 0, kl: 1, alpha: 1, loss: kl };
  }
}

/** Whether the objective needs the LM's suffix forward and backward (a KL term). */
export function needsKl(objective: Objective): boolean {
  return objective !== "mse";
}
