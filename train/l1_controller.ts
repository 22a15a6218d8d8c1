// The L1 controller of the paper's Appendix E: it holds a ReLU SAE's L0 at a target during the
// fine-tune by nudging λ by 0.1% per step, so KL gains are not bought with denser codes.

export interface L1Controller {
  lambda: number;
  target: number;
  rate: number;
}

export function createL1Controller(lambda: number, targetL0: number, rate = 0.001): L1Controller {
  if (!(lambda > 0)) throw new RangeError(`L1 controller: λ must be > 0, got ${lambda}`);
  if (!(targetL0 > 0)) {
    throw new RangeError(`L1 controller: target L0 must be > 0, got ${targetL0}`);
  }
  return { lambda, target: targetL0, rate };
}

/** λ for the next step given this step's L0: ×(1−rate) if L0 < target, else ×(1+rate). */
export function updateL1(c: L1Controller, l0: number): L1Controller {
  const factor = l0 < c.target ? 1 - c.rate : 1 + c.rate;
  return { ...c, lambda: c.lambda * factor };
}
