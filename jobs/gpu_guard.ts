// A trainer whose first GPU work is checked: WebGPU reports a rejected binding or an allocation it
// could not make as an error event, not an exception, and the kernels that did not run leave zeros
// behind, so without this a job "trains" an SAE that never moved and ends succeeded. The first
// forward pass and the first step run inside validation and out-of-memory error scopes, and a
// first step whose gradient is exactly zero (no healthy SAE has one: b_dec alone sees the mean
// reconstruction error) fails the job.
import type { OwnedTrainer } from "../sae/trainer.ts";

export class GpuJobError extends Error {
  override name = "GpuJobError";
}

async function scoped<T>(device: GPUDevice, what: string, f: () => Promise<T>): Promise<T> {
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  let result: T | undefined, thrown: unknown = null;
  try {
    result = await f();
  } catch (e) {
    thrown = e;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (oom) {
    throw new GpuJobError(
      `the GPU ran out of memory in the SAE's ${what} (${oom.message}); use a smaller d_sae or ` +
        `batch_size`,
    );
  }
  if (validation) {
    throw new GpuJobError(
      `the GPU adapter rejected the SAE's ${what} (${validation.message}); the SAE or the batch ` +
        `is too large for this adapter: use a smaller d_sae or batch_size`,
    );
  }
  if (thrown) throw thrown;
  return result as T;
}

/** `trainer` with its first forward and first step checked on `device` (see above). */
export function guardTrainer(
  trainer: OwnedTrainer,
  device: GPUDevice,
  opts: { mustMove: boolean },
): OwnedTrainer {
  let forwarded = false, stepped = false;
  const guarded: OwnedTrainer = {
    get dIn() {
      return trainer.dIn;
    },
    get dSae() {
      return trainer.dSae;
    },
    forward(x, n, inference, target) {
      if (forwarded) return trainer.forward(x, n, inference, target);
      forwarded = true;
      return scoped(device, "forward pass", () => trainer.forward(x, n, inference, target));
    },
    async backwardAndStep(o) {
      if (stepped) return await trainer.backwardAndStep(o);
      stepped = true;
      const r = await scoped(device, "training step", () => trainer.backwardAndStep(o));
      if (opts.mustMove && r.gradNorm === 0) {
        throw new GpuJobError(
          "the SAE's gradient was exactly zero at its first step, so it would never train: the " +
            "GPU did not run the training kernels (see the service log for GPU errors)",
        );
      }
      return r;
    },
    state: () => trainer.state(),
    restore: (s) => trainer.restore(s),
    toSae: () => trainer.toSae(),
    release: () => trainer.release(),
  };
  if (trainer.inputGradient) guarded.inputGradient = (g) => trainer.inputGradient!(g);
  return guarded;
}
