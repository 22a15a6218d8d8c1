// Data sets by id: "brown" (built in) and registered text/JSONL/token files.
import type { Database } from "../db/client.ts";
import { loadBrown } from "../data/brown.ts";
import { packSequences, SequenceBatches } from "../data/sequences.ts";
import { byteTokenizer } from "../data/tokenizer.ts";

export interface Dataset {
  id: string;
  batches(
    split: "train" | "validation",
    batchSize: number,
    seqLen: number,
    seed: number,
    shuffle?: boolean,
  ): SequenceBatches;
}

let brown: Promise<{ train: string; validation: string }> | null = null;

export function loadDataset(_database: Database, id: string): Promise<Dataset> {
  if (id !== "brown") {
    return Promise.reject(new Error(`data set "${id}" is not known (built in: brown)`));
  }
  brown ??= loadBrown();
  return brown.then((b) => ({
    id,
    batches: (split, batchSize, seqLen, seed, shuffle = true) =>
      new SequenceBatches(
        packSequences([byteTokenizer.encode(split === "train" ? b.train : b.validation)], seqLen),
        batchSize,
        seed,
        shuffle,
      ),
  }));
}
