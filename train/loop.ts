// The loop both training phases share (the MSE phase on shuffled activations and the KL+MSE
// fine-tune): resume from the newest checkpoint, run the steps, keep the metrics cadence (one row
// per SAE every `metricsEvery` steps and at the last, with the tokens a second since the previous
// row) and the checkpoint cadence (what a checkpoint covers made durable first). What a step does
// is the phase's; when it happens is here.
import {
  assertFinite,
  type Checkpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import type { StepMetrics } from "./step_metrics.ts";

export type Tensors = Map<string, { data: Float32Array; shape: number[] }>;

export interface LoopOptions<S> {
  steps: number;
  /** Tokens one step trains on (for the metrics' token counts and throughput). */
  tokensPerStep: number;
  metricsEvery?: number;
  checkpointEvery?: number;
  checkpointDir?: string;
  /** Puts a checkpoint's tensors and state back; the loop then continues from its step. */
  resume(ck: Checkpoint<S>): Promise<void>;
  /** What a checkpoint holds, taken after the step it is named by. */
  snapshot(): Promise<{ state: S; tensors: Tensors }>;
  /**
   * One step. With `log` it returns the metrics rows (one per SAE, without `tokens` and
   * `tokensPerSecond`, which the loop fills in); otherwise what it returns is ignored.
   */
  step(step: number, log: boolean): Promise<Omit<StepMetrics, "tokens" | "tokensPerSecond">[]>;
  onMetrics?: (m: StepMetrics, sae: number) => void | Promise<void>;
  /** Awaited before a checkpoint is written: what it covers (metric rows) must be durable first. */
  beforeCheckpoint?: () => void | Promise<void>;
  onCheckpoint?: (step: number, dir: string) => void | Promise<void>;
  /** Called after every step (e.g. to evaluate or sample weights at chosen steps). */
  onStep?: (step: number) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Runs the steps not yet done; returns the step it resumed from (0 on a fresh run). */
export async function runLoop<S>(o: LoopOptions<S>): Promise<{ resumedFrom: number }> {
  let start = 0;
  if (o.checkpointDir) {
    const ck = await loadLatestCheckpoint<S>(o.checkpointDir);
    if (ck) {
      await o.resume(ck);
      start = ck.step;
    }
  }
  const metricsEvery = o.metricsEvery ?? 8, ckEvery = o.checkpointEvery ?? 0;
  let t0 = performance.now(), tokensSince = 0;
  for (let step = start; step < o.steps; step++) {
    o.signal?.throwIfAborted();
    const last = step === o.steps - 1;
    const log = (step + 1) % metricsEvery === 0 || last;
    const rows = await o.step(step, log);
    tokensSince += o.tokensPerStep;
    if (log) {
      const now = performance.now();
      const tokensPerSecond = tokensSince / ((now - t0) / 1000);
      for (const [i, r] of rows.entries()) {
        await o.onMetrics?.({ ...r, tokens: (step + 1) * o.tokensPerStep, tokensPerSecond }, i);
      }
      t0 = now;
      tokensSince = 0;
    }
    if (o.checkpointDir && ckEvery && ((step + 1) % ckEvery === 0 || last)) {
      const { state, tensors } = await o.snapshot();
      for (const [name, t] of tensors) assertFinite(name, t.data, step + 1);
      await o.beforeCheckpoint?.();
      const ck: Checkpoint<S> = { step: step + 1, state, tensors };
      const dir = await saveCheckpoint(o.checkpointDir, ck);
      await o.onCheckpoint?.(step + 1, dir);
    }
    await o.onStep?.(step + 1);
  }
  return { resumedFrom: start };
}
