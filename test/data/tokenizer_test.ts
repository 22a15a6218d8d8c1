import { assert, assertEquals } from "@std/assert";
import { byteTokenizer, loadTokenizerJson } from "../../data/tokenizer.ts";

Deno.test("byte tokenizer round-trips UTF-8 text", () => {
  const text = 'He said "naïve café" — 100%.';
  const ids = byteTokenizer.encode(text);
  assert(ids.every((i) => i >= 0 && i < 256));
  assertEquals(ids.length, new TextEncoder().encode(text).length);
  assertEquals(byteTokenizer.decode(ids), text);
});

Deno.test("tokenizer.json through @huggingface/tokenizers, with special tokens from tokenizer_config.json", async () => {
  const t = await loadTokenizerJson(
    new URL("../fixtures/data/tokenizer.json", import.meta.url).pathname,
  );
  assertEquals(t.encode("the cat sat on the mat ."), [3, 4, 5, 6, 3, 7, 8]);
  assertEquals(t.encode("the dog"), [3, 2]);
  assertEquals([t.bos, t.eos, t.vocabSize], [0, 1, 9]);
  assertEquals(t.decode([3, 4, 5]).replaceAll(" ", ""), "thecatsat");
});
