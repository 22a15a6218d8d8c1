// The L1 controller of the paper's Appendix E: it holds a ReLU SAE's L0 at a target during the
// fine-tune by nudging λ by 0.1% per step, so KL gains are not bought with denser codes.
//
// JumpReLU from scratch needs more. Its MSE gradient alone pushes θ up (near-threshold activations
// overshoot while the decoder learns), so with λ → 0⁺ L0 kept falling below the target (15 for
// 32, bench/RESULTS.md): λ must be able to go negative, paying for firing latents (the multiplier
// of the constraint L0 = target takes either sign). And λ reaches L0 only through θ, whose Adam
// step saturates at about one LR a step once the λ term dominates its gradient: a λ that keeps
// growing (an integral) only winds up and overshoots (measured: L0 flat at 21 while λ fell to
// −46·λ₀, then rising at the saturated rate). So the signed controller is proportional and
// saturating, λ = gain·|λ₀|·clamp(sharpness·(L0/target − 1), −1, 1): full push either way once L0
// is 20% off, as dictionary_learning's (L0/target − 1)² penalty pushes in proportion to the error.

export interface L1Controller {
  /** The λ to train with. */
  lambda: number;
  target: number;
  rate: number;
  /** Signed controllers: |λ| at creation is `unit`; absent: λ stays > 0 and moves ×(1 ± rate). */
  signed?: { unit: number; gain: number; sharpness: number };
}

export function createL1Controller(
  lambda: number,
  targetL0: number,
  rate = 0.001,
  opts: { signed?: boolean; gain?: number; sharpness?: number } = {},
): L1Controller {
  // A negative λ comes only from a signed controller's phase (JumpReLU's MSE phase) handed on to
  // the fine-tune, which keeps moving it the same way (more negative while L0 is below target).
  if (!(Number.isFinite(lambda) && lambda !== 0)) {
    throw new RangeError(`L1 controller: λ must be a nonzero number, got ${lambda}`);
  }
  if (!(targetL0 > 0)) {
    throw new RangeError(`L1 controller: target L0 must be > 0, got ${targetL0}`);
  }
  return {
    lambda,
    target: targetL0,
    rate,
    ...(opts.signed
      ? {
        signed: {
          unit: Math.abs(lambda),
          gain: opts.gain ?? 30,
          sharpness: opts.sharpness ?? 5,
        },
      }
      : {}),
  };
}

/**
 * λ for the next step given this step's L0. Unsigned: up by rate·|λ| if L0 ≥ target, else down
 * (for λ > 0, ×(1 ± rate) as App. E). Signed: gain·unit·clamp(sharpness·(L0/target − 1), −1, 1).
 */
export function updateL1(c: L1Controller, l0: number): L1Controller {
  if (!c.signed) {
    const dir = l0 < c.target ? -1 : 1;
    return { ...c, lambda: c.lambda + dir * c.rate * Math.abs(c.lambda) };
  }
  const { unit, gain, sharpness } = c.signed;
  const push = Math.max(-1, Math.min(1, sharpness * (l0 / c.target - 1)));
  // Exactly at the target there is nothing to correct: λ keeps its value (and stays nonzero for
  // the fine-tune's controller, which continues from it).
  return push === 0 ? c : { ...c, lambda: gain * unit * push };
}
