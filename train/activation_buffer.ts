// A shuffle buffer of activations in host memory. LM activations of neighbouring tokens are
// correlated; the MSE phase trains on batches drawn at random from a large buffer, refilled half
// at a time, as SAELens and dictionary_learning do. Several SAEs can read the same batches.
import { Rng } from "../lib/rng.ts";

export class ActivationBuffer {
  readonly data: Float32Array;
  #filled = 0;

  constructor(readonly capacity: number, readonly d: number, readonly rng: Rng) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `activation buffer: capacity must be a positive integer, got ${capacity}`,
      );
    }
    this.data = new Float32Array(capacity * d);
  }

  get filled(): number {
    return this.#filled;
  }

  /** Rows that can still be added before the buffer is full. */
  get room(): number {
    return this.capacity - this.#filled;
  }

  /** Appends rows [n, d]; returns how many fitted. */
  push(rows: Float32Array): number {
    if (rows.length % this.d !== 0) {
      throw new RangeError(
        `activation buffer: ${rows.length} values is not a whole number of rows of ${this.d}`,
      );
    }
    const n = Math.min(rows.length / this.d, this.room);
    this.data.set(rows.subarray(0, n * this.d), this.#filled * this.d);
    this.#filled += n;
    return n;
  }

  /**
   * Takes `batch` rows at random positions and compacts the buffer (the taken rows' slots are filled
   * from the end), so the buffer mixes old and new activations as it is refilled.
   */
  take(batch: number, out = new Float32Array(batch * this.d)): Float32Array {
    if (batch > this.#filled) {
      throw new RangeError(`activation buffer: asked for ${batch} rows, holds ${this.#filled}`);
    }
    const d = this.d;
    for (let b = 0; b < batch; b++) {
      const i = this.rng.int(this.#filled);
      const last = this.#filled - 1;
      out.set(this.data.subarray(i * d, i * d + d), b * d);
      if (i !== last) this.data.copyWithin(i * d, last * d, last * d + d);
      this.#filled--;
    }
    return out;
  }
}
