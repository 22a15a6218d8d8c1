// GPU timing. With the timestamp-query feature, compute passes carry timestampWrites and the
// elapsed GPU time of each pass is resolved on the device; without it, wall-clock time around a
// queue drain (onSubmittedWorkDone) is the fallback, and results say which source they came from.

export type TimingSource = "timestamp" | "wall";

/** Times up to `maxPasses` compute passes with timestamp queries. */
export class PassTimer {
  readonly querySet: GPUQuerySet;
  #resolve: GPUBuffer;
  #labels: string[] = [];

  constructor(readonly device: GPUDevice, readonly maxPasses = 64) {
    if (!device.features.has("timestamp-query")) {
      throw new Error(
        "PassTimer needs the timestamp-query feature; use timeGpu() for wall-clock timing",
      );
    }
    this.querySet = device.createQuerySet({ type: "timestamp", count: 2 * maxPasses });
    this.#resolve = device.createBuffer({
      size: 16 * maxPasses,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Descriptor for beginComputePass that records this pass's start and end. */
  pass(label: string): GPUComputePassDescriptor {
    const i = this.#labels.length;
    if (i >= this.maxPasses) throw new Error(`PassTimer: more than ${this.maxPasses} passes`);
    this.#labels.push(label);
    return {
      label,
      timestampWrites: {
        querySet: this.querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    };
  }

  /** Resolves the recorded passes: milliseconds per label (summed over passes sharing a label). */
  async read(): Promise<Record<string, number>> {
    const n = this.#labels.length;
    const staging = this.device.createBuffer({
      size: 16 * Math.max(1, n),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    if (n) {
      enc.resolveQuerySet(this.querySet, 0, 2 * n, this.#resolve, 0);
      enc.copyBufferToBuffer(this.#resolve, 0, staging, 0, 16 * n);
    }
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    const out: Record<string, number> = {};
    this.#labels.forEach((label, i) => {
      const ns = t[2 * i + 1] > t[2 * i] ? Number(t[2 * i + 1] - t[2 * i]) : 0;
      out[label] = (out[label] ?? 0) + ns / 1e6;
    });
    this.#labels = [];
    return out;
  }

  destroy(): void {
    this.querySet.destroy();
    this.#resolve.destroy();
  }
}

/** Wall-clock milliseconds of `fn` including the GPU work it submitted. */
export async function timeGpu(
  device: GPUDevice,
  fn: () => void | Promise<void>,
): Promise<{ ms: number; source: TimingSource }> {
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  await fn();
  await device.queue.onSubmittedWorkDone();
  return { ms: performance.now() - t0, source: "wall" };
}
