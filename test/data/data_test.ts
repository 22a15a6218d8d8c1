import { assert, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { brownParagraphs, corpusDir, loadBrown } from "../../data/brown.ts";
import { DataError, packSequences, SequenceBatches } from "../../data/sequences.ts";
import { byteTokenizer, loadTokenizerJson } from "../../data/tokenizer.ts";
import { havePython } from "../util/python.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("Brown normalisation: tags stripped at the last '/', `` and '' become \", paragraphs on blank lines", () => {
  const raw =
    "\n\n\tThe/at Fulton/np-tl ``/`` said/vbd a/b/nn ''/'' ./.\n\n \n\tNext/ap\xa0line/nn ./.\n";
  assertEquals(brownParagraphs(raw), ['The Fulton " said a/b " .', "Next line ."]);
});

Deno.test("Brown corpus: split sizes, and byte-identical to tools/python/brown_text.py when python3 runs", async () => {
  const b = await loadBrown();
  assertEquals(b.files, { train: 459, validation: 41 });
  assertEquals(b.paragraphs, { train: 14294, validation: 1373 });
  assertEquals(new TextEncoder().encode(b.train).length, 5_608_507);
  assertEquals(new TextEncoder().encode(b.validation).length, 500_941);
  const out = await Deno.makeTempDir();
  try {
    const script = new URL("../../tools/python/brown_text.py", import.meta.url).pathname;
    if (!(await havePython())) return console.log("python3 not available: compared sizes only");
    // With python3 present, the script has to run: its failure fails the test.
    const py = await new Deno.Command("python3", {
      args: [script, corpusDir(), out],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(py.success, new TextDecoder().decode(py.stderr));
    assertEquals(b.train, await Deno.readTextFile(`${out}/brown-train.txt`));
    assertEquals(b.validation, await Deno.readTextFile(`${out}/brown-val.txt`));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

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

Deno.test("packing: BOS/EOS between documents, the short tail dropped, bad lengths refused", () => {
  const seqs = packSequences([[1, 2, 3], [4, 5]], 3, { bos: 0, eos: 9 });
  assertEquals(seqs.map((s) => Array.from(s)), [[0, 1, 2], [3, 9, 0], [4, 5, 9]]);
  assertEquals(packSequences([[1, 2, 3, 4, 5]], 2).length, 2);
  assertThrows(() => packSequences([[1]], 1), DataError, "≥ 2");
});

Deno.test("batches: seeded order, resume from a cursor gives the same batches, epochs reshuffle", () => {
  const rng = freshRng("sequences");
  const seqs = Array.from(
    { length: 23 },
    (_, i) => Int32Array.from({ length: 4 }, (_, t) => i * 10 + t),
  );
  const seed = rng.int(1000);
  const a = new SequenceBatches(seqs, 3, seed);
  const straight = Array.from({ length: 20 }, () => Array.from(a.next()));
  const b = new SequenceBatches(seqs, 3, seed);
  for (let i = 0; i < 9; i++) b.next();
  const c = new SequenceBatches(seqs, 3, seed);
  c.seek(b.cursor);
  const resumed = Array.from({ length: 11 }, () => Array.from(c.next()));
  assertEquals(resumed, straight.slice(9));
  // Each epoch (7 batches) serves distinct sequences; the next epoch uses another order.
  const firstSeq = (batch: bigint[]) => Number(batch[0]) / 10;
  const epoch0 = straight.slice(0, 7).flatMap((bt) => [0, 4, 8].map((o) => Number(bt[o]) / 10));
  assertEquals(new Set(epoch0).size, 21);
  assertNotEquals(straight.slice(7, 14).map(firstSeq), straight.slice(0, 7).map(firstSeq));
  assertThrows(() => new SequenceBatches([], 2, 0), DataError, "empty");
  assertThrows(
    () => new SequenceBatches(seqs.slice(0, 1), 2, 0),
    DataError,
    "fewer than one batch",
  );
});
