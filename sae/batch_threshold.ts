// BatchTopK's inference threshold, shared by the BatchTopK and Matryoshka BatchTopK trainers: a
// training forward selects the k·n largest activations over the batch (gpu/batch_topk.ts); the
// threshold inference cuts at follows the smallest of them, as dictionary_learning's
// threshold_beta and threshold_start_step.
import { write } from "../gpu/buffers.ts";
import * as batchTopk from "../gpu/batch_topk.ts";
import type { Binding, Rec } from "../gpu/kernel.ts";
import type { TrainerState } from "./gpu_trainer.ts";

export interface BatchThresholdOptions {
  /** EMA factor of the running inference threshold (default 0.999). */
  thresholdBeta?: number;
  /**
   * Training steps before the inference threshold starts to follow the batches (as
   * dictionary_learning's threshold_start_step); from then it is their running mean until it has
   * 1/(1−β) samples, then the EMA. Unset: the EMA from the first batch, as a fine-tune of a
   * trained SAE wants.
   */
  thresholdStartStep?: number;
}

export class BatchThreshold {
  /** Host copy of the threshold parameter; < 0 until the first batch sets it. */
  #value: number;
  /** Training forwards so far (the optimizer's step count after a restore). */
  #trainSteps = 0;

  constructor(
    readonly device: GPUDevice,
    /** The SAE's threshold parameter, [1]. */
    readonly param: GPUBuffer,
    initial: number,
    readonly opts: BatchThresholdOptions,
  ) {
    this.#value = initial;
  }

  /** h from pre: at inference cut at the threshold, in training the batch-wide top k·n. */
  record(
    rec: Rec,
    b: { pre: Binding; h: Binding; select: Binding; hist: Binding },
    { count, want, inference }: { count: number; want: number; inference: boolean },
  ): void {
    if (inference) {
      batchTopk.threshold(rec, { pre: b.pre, theta: this.param, h: b.h }, { count, cols: 1 });
    } else {
      batchTopk.select(rec, { pre: b.pre, state: b.select, hist: b.hist, h: b.h }, {
        count,
        want,
      });
    }
  }

  /** After a training forward: the EMA of the batch's smallest selected activation. */
  async update(select: GPUBuffer): Promise<void> {
    const step = this.#trainSteps++;
    const start = this.opts.thresholdStartStep;
    // The first batches' selections are far from the trained SAE's: a threshold that starts
    // there is dominated by them on a short run (inference L0 well below k).
    if (start !== undefined && step < start) return;
    const { minSelected, positives } = await batchTopk.selection(this.device, select);
    if (!positives) return;
    let beta = this.opts.thresholdBeta ?? 0.999;
    if (start !== undefined) beta = Math.min(beta, 1 - 1 / (step - start + 1));
    this.#value = this.#value < 0 ? minSelected : beta * this.#value + (1 - beta) * minSelected;
    write(this.device, this.param, Float32Array.of(this.#value));
  }

  /** After the trainer restored its parameters from `state`. */
  restore(state: TrainerState): void {
    const th = state.get("threshold");
    if (th) this.#value = th.data[0];
    this.#trainSteps = state.get("adam.t")?.data[0] ?? 0;
  }
}
