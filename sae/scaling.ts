// Activation scaling: train on s·x with E‖s·x‖² = d_in, then fold s into the weights on save so the
// saved SAE reads raw activations. For the scaled SAE on x' = s·x:
//   pre = (s·x − b_dec)·W_enc + b_enc = (x − b_dec/s)·(s·W_enc) + b_enc
//   x̂ = (h·W_dec + b_dec)/s = h·(W_dec/s) + b_dec/s
// so W_enc ← s·W_enc, W_dec ← W_dec/s, b_dec ← b_dec/s, and b_enc and thresholds (which act on
// pre-activations, unchanged) stay. This is SAELens' fold_activation_norm_scaling_factor.
import type { Sae } from "./types.ts";

export type ScalingMethod =
  /** E‖s·x‖² = d_in (this project's definition). */
  | "mean_squared_norm"
  /** E‖s·x‖ = √d_in (SAELens' ActivationScaler.estimate_scaling_factor). */
  | "mean_norm";

/** Accumulates activation norms over any number of batches, in float64. */
export class ScalingEstimator {
  #sumSq = 0;
  #sumNorm = 0;
  #tokens = 0;
  constructor(readonly dIn: number) {}

  /** x: [tokens, dIn] row-major. */
  add(x: Float32Array | Float64Array): void {
    const d = this.dIn;
    if (x.length % d !== 0) {
      throw new Error(`ScalingEstimator: ${x.length} values is not a whole number of ${d}-rows`);
    }
    for (let t = 0; t < x.length / d; t++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[t * d + j] * x[t * d + j];
      this.#sumSq += s;
      this.#sumNorm += Math.sqrt(s);
    }
    this.#tokens += x.length / d;
  }

  get tokens(): number {
    return this.#tokens;
  }

  factor(method: ScalingMethod = "mean_squared_norm"): number {
    if (this.#tokens === 0) throw new Error("ScalingEstimator: no activations were added");
    const s = method === "mean_squared_norm"
      ? Math.sqrt(this.dIn / (this.#sumSq / this.#tokens))
      : Math.sqrt(this.dIn) / (this.#sumNorm / this.#tokens);
    if (!Number.isFinite(s) || s <= 0) {
      throw new Error(`ScalingEstimator: the activations have zero norm (factor ${s})`);
    }
    return s;
  }
}

/** s such that E‖s·x‖² = d_in over the rows of x [tokens, dIn]. */
export function estimateScalingFactor(
  x: Float32Array | Float64Array,
  dIn: number,
  method: ScalingMethod = "mean_squared_norm",
): number {
  const e = new ScalingEstimator(dIn);
  e.add(x);
  return e.factor(method);
}

/** A copy of `sae` (trained on s·x) that acts on raw x: same latents, output divided by s. */
export function foldScaling(sae: Sae, s: number): Sae {
  if (!Number.isFinite(s) || s <= 0) throw new Error(`foldScaling: invalid scaling factor ${s}`);
  const w = sae.weights;
  return {
    cfg: structuredClone(sae.cfg),
    weights: {
      W_enc: w.W_enc.map((v) => v * s),
      b_enc: w.b_enc.slice(),
      W_dec: w.W_dec.map((v) => v / s),
      b_dec: w.b_dec.map((v) => v / s),
      ...(w.threshold ? { threshold: w.threshold.slice() } : {}),
      // gated: π_mag = exp(r_mag)·((x − b_dec)·W_enc) + b_mag is a pre-activation too.
      ...(w.r_mag ? { r_mag: w.r_mag.slice() } : {}),
      ...(w.b_mag ? { b_mag: w.b_mag.slice() } : {}),
    },
  };
}
