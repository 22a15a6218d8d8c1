// Learning-rate schedules as pure functions of the step. The paper's fine-tune: constant LR, then
// linear decay to 0 over the last `decayFraction` of the steps.

export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Total optimizer steps of the run. */
  totalSteps: number;
  /** Linear warm-up steps from 0 to lr. */
  warmupSteps?: number;
  /** Fraction of totalSteps, at the end, over which the LR decays linearly to 0 (0 = constant). */
  decayFraction?: number;
}

export function validateSchedule(s: LrSchedule): void {
  const bad = (msg: string) => {
    throw new RangeError(`learning-rate schedule: ${msg}`);
  };
  if (!(s.lr >= 0) || !Number.isFinite(s.lr)) bad(`lr must be a finite number ≥ 0, got ${s.lr}`);
  if (!Number.isInteger(s.totalSteps) || s.totalSteps < 1) {
    bad(`totalSteps must be an integer ≥ 1, got ${s.totalSteps}`);
  }
  const w = s.warmupSteps ?? 0;
  if (!Number.isInteger(w) || w < 0 || w > s.totalSteps) {
    bad(`warmupSteps must be an integer in [0, totalSteps], got ${w}`);
  }
  const f = s.decayFraction ?? 0;
  if (!(f >= 0 && f <= 1)) bad(`decayFraction must be in [0, 1], got ${f}`);
}

/** LR used for optimizer step `step` (0-based). The last step of a decayed run uses lr/decaySteps. */
export function lrAt(s: LrSchedule, step: number): number {
  const warm = s.warmupSteps ?? 0;
  const decaySteps = Math.round((s.decayFraction ?? 0) * s.totalSteps);
  const decayStart = s.totalSteps - decaySteps;
  let lr = s.lr;
  if (warm > 0 && step < warm) lr *= (step + 1) / warm;
  if (decaySteps > 0 && step >= decayStart) {
    lr *= Math.max(0, (s.totalSteps - step) / decaySteps);
  }
  return lr;
}
