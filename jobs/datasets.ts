// Data sets by id: "brown" (built in) and registered text/JSONL/token files.
import { eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { datasets } from "../db/schema.ts";
import { loadBrown } from "../data/brown.ts";
import { DatasetSpec } from "../data/dataset_config.ts";
import { jsonlDocuments, parquetDocuments, textDocuments, tokenFile } from "../data/readers.ts";
import { DataError, packSequences, SequenceBatches } from "../data/sequences.ts";
import { byteTokenizer, loadTokenizerJson, type Tokenizer } from "../data/tokenizer.ts";

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

export async function loadDataset(database: Database, id: string): Promise<Dataset> {
  if (id === "brown") {
    brown ??= loadBrown();
    const b = await brown;
    const tokens = {
      train: byteTokenizer.encode(b.train),
      validation: byteTokenizer.encode(b.validation),
    };
    return splitDataset(id, [tokens.train], [tokens.validation]);
  }
  const [row] = await database.db.select().from(datasets).where(eq(datasets.id, id));
  if (!row) throw new DataError(`data set "${id}" is not known (GET /datasets)`);
  const spec = DatasetSpec.parse({ ...(row.config as object), path: row.path, name: row.name });
  if (spec.format === "tokens") {
    const all = await tokenFile(spec.path, spec.token_width);
    const cut = Math.floor(all.length * (1 - spec.validation_fraction));
    return splitDataset(id, [all.subarray(0, cut)], [all.subarray(cut)]);
  }
  const tok: Tokenizer = spec.tokenizer === "bytes"
    ? byteTokenizer
    : await loadTokenizerJson(spec.tokenizer);
  const docs: number[][] = [];
  const source = spec.format === "text"
    ? textDocuments(spec.path, spec.text_split)
    : spec.format === "jsonl"
    ? jsonlDocuments(spec.path, spec.field)
    : parquetDocuments(spec.path, spec.field);
  for await (const text of source) docs.push(tok.encode(text));
  if (docs.length < 2) {
    throw new DataError(`data set "${id}" has ${docs.length} document(s): need 2 to hold one out`);
  }
  const cut = Math.min(docs.length - 1, Math.floor(docs.length * (1 - spec.validation_fraction)));
  return splitDataset(id, docs.slice(0, Math.max(1, cut)), docs.slice(Math.max(1, cut)), tok);
}

function splitDataset(
  id: string,
  train: ArrayLike<number>[],
  validation: ArrayLike<number>[],
  tok?: Tokenizer,
): Dataset {
  const packed = new Map<string, ReturnType<typeof packSequences>>();
  return {
    id,
    batches: (split, batchSize, seqLen, seed, shuffle = true) => {
      const key = `${split}:${seqLen}`;
      let seqs = packed.get(key);
      if (!seqs) {
        seqs = packSequences(split === "train" ? train : validation, seqLen, {
          bos: tok?.bos,
          eos: tok?.eos,
        });
        packed.set(key, seqs);
      }
      return new SequenceBatches(seqs, batchSize, seed, shuffle);
    },
  };
}
