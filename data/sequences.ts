// Packing token streams into fixed-length sequences and serving them as batches in a seeded,
// deterministic order with a cursor that checkpoints can save, so a resumed run sees exactly the
// batches an uninterrupted one would have.
import { Rng } from "../lib/rng.ts";

export class DataError extends Error {
  override name = "DataError";
}

/**
 * Concatenates documents' tokens (with optional BOS before / EOS after each) and cuts the stream
 * into non-overlapping sequences of `seqLen`; the tail shorter than seqLen is dropped.
 */
export function packSequences(
  docs: Iterable<ArrayLike<number>>,
  seqLen: number,
  opts: { bos?: number; eos?: number } = {},
): Int32Array[] {
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new DataError(`sequence length must be an integer ≥ 2, got ${seqLen}`);
  }
  const out: Int32Array[] = [];
  let cur = new Int32Array(seqLen), fill = 0;
  const push = (t: number) => {
    cur[fill++] = t;
    if (fill === seqLen) {
      out.push(cur);
      cur = new Int32Array(seqLen);
      fill = 0;
    }
  };
  for (const doc of docs) {
    if (opts.bos !== undefined) push(opts.bos);
    for (let i = 0; i < doc.length; i++) push(doc[i]);
    if (opts.eos !== undefined) push(opts.eos);
  }
  return out;
}

export interface Cursor {
  epoch: number;
  /** Batches served within the epoch. */
  batch: number;
}

/** Batches of [batchSize, seqLen] int64 tokens in a seeded order, reshuffled each epoch. */
export class SequenceBatches {
  readonly seqLen: number;
  #order: Uint32Array;
  #cursor: Cursor = { epoch: 0, batch: 0 };

  constructor(
    readonly sequences: Int32Array[],
    readonly batchSize: number,
    readonly seed: number,
    readonly shuffle = true,
  ) {
    if (!sequences.length) {
      throw new DataError("the data set is empty: no complete sequence to train on");
    }
    if (sequences.length < batchSize) {
      throw new DataError(
        `the data set has ${sequences.length} sequences, fewer than one batch of ${batchSize}`,
      );
    }
    this.seqLen = sequences[0].length;
    this.#order = this.#orderFor(0);
  }

  #orderFor(epoch: number): Uint32Array {
    const order = Uint32Array.from({ length: this.sequences.length }, (_, i) => i);
    if (this.shuffle) new Rng((this.seed + Math.imul(epoch, 0x9e3779b1)) >>> 0).shuffle(order);
    return order;
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.sequences.length / this.batchSize);
  }

  get cursor(): Cursor {
    return { ...this.#cursor };
  }

  /** Continues from a saved cursor. */
  seek(c: Cursor): void {
    if (c.epoch !== this.#cursor.epoch) this.#order = this.#orderFor(c.epoch);
    this.#cursor = { ...c };
  }

  next(): BigInt64Array {
    if (this.#cursor.batch >= this.batchesPerEpoch) {
      this.#cursor = { epoch: this.#cursor.epoch + 1, batch: 0 };
      this.#order = this.#orderFor(this.#cursor.epoch);
    }
    const B = this.batchSize, T = this.seqLen;
    const out = new BigInt64Array(B * T);
    for (let b = 0; b < B; b++) {
      const seq = this.sequences[this.#order[this.#cursor.batch * B + b]];
      for (let t = 0; t < T; t++) out[b * T + t] = BigInt(seq[t]);
    }
    this.#cursor.batch++;
    return out;
  }
}
