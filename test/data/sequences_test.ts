import { assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { DataError, packSequences, SequenceBatches } from "../../data/sequences.ts";
import { freshRng } from "../util/rand.ts";

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
