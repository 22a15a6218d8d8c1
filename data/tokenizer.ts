// Tokenizers behind one interface: UTF-8 bytes (the embedded default, token id = byte value) and
// Hugging Face tokenizer.json files through @huggingface/tokenizers.
import { basename, dirname, join } from "node:path";
import { readTextConfined } from "../lib/confined_fs.ts";

export interface Tokenizer {
  name: string;
  vocabSize: number;
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  bos?: number;
  eos?: number;
  pad?: number;
}

export const byteTokenizer: Tokenizer = {
  name: "bytes",
  vocabSize: 256,
  encode: (text) => Array.from(new TextEncoder().encode(text)),
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids as ArrayLike<number>)),
};

const MAX_TOKENIZER_BYTES = 256 * 2 ** 20;

/** Loads a tokenizer.json (and tokenizer_config.json beside it, when present, for special tokens). */
export async function loadTokenizerJson(path: string): Promise<Tokenizer> {
  const { Tokenizer: HfTokenizer } = await import("@huggingface/tokenizers");
  const folder = { roots: [dirname(path)], where: "its folder" };
  const read = (p: string) =>
    readTextConfined(p, folder, { maxBytes: MAX_TOKENIZER_BYTES, label: basename(p) });
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await read(path));
  } catch (e) {
    throw new Error(`cannot read tokenizer "${basename(path)}": ${(e as Error).message}`);
  }
  let config: Record<string, unknown> = {};
  const configPath = join(dirname(path), "tokenizer_config.json");
  // Optional, but when present it is read like any other file: a FIFO there must not block us.
  if (await Deno.lstat(configPath).then(() => true, () => false)) {
    try {
      config = JSON.parse(await read(configPath));
    } catch (e) {
      throw new Error(`cannot read tokenizer_config.json: ${(e as Error).message}`);
    }
  }
  const tok = new HfTokenizer(json, config);
  const model = (json.model ?? {}) as { vocab?: Record<string, number> | unknown[] };
  const added = (json.added_tokens ?? []) as { id: number; content: string }[];
  const vocabSize = Math.max(
    Array.isArray(model.vocab) ? model.vocab.length : Object.keys(model.vocab ?? {}).length,
    ...added.map((t) => t.id + 1),
  );
  const special = (key: string): number | undefined => {
    const v = config[key];
    const content = typeof v === "string" ? v : (v as { content?: string } | undefined)?.content;
    return content === undefined ? undefined : added.find((t) => t.content === content)?.id;
  };
  return {
    name: path,
    vocabSize,
    encode: (text) => [...tok.encode(text, { add_special_tokens: false }).ids],
    decode: (ids) => tok.decode(Array.from(ids), { skip_special_tokens: false }),
    bos: special("bos_token"),
    eos: special("eos_token"),
    pad: special("pad_token"),
  };
}
