// A data set registered by path: the file, how to read documents from it, how to tokenize them,
// and which share of it is held out for evaluation.
import { z } from "zod";

export const DatasetSpec = z.object({
  name: z.string().min(1).max(200),
  path: z.string().min(1).describe("a file under one of SPLICE_ROOTS"),
  format: z.enum(["text", "jsonl", "parquet", "tokens"]),
  text_split: z.enum(["file", "line", "paragraph"]).default("paragraph").describe(
    "text: what one document is",
  ),
  field: z.string().min(1).default("text").describe("jsonl field / parquet column"),
  token_width: z.union([z.literal(16), z.literal(32)]).default(16).describe(
    "tokens: little-endian uint16 or uint32 ids",
  ),
  tokenizer: z.string().min(1).default("bytes").describe(
    '"bytes" (UTF-8 bytes, the embedded model\'s) or the path of a tokenizer.json under SPLICE_ROOTS',
  ),
  validation_fraction: z.number().gt(0).lt(1).default(0.05).describe(
    "the last share of the documents (or tokens) is the validation split",
  ),
}).strict();
export type DatasetSpec = z.infer<typeof DatasetSpec>;
