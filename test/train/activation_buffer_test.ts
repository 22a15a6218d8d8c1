import { assert, assertEquals, assertThrows } from "@std/assert";
import { ActivationBuffer } from "../../train/activation_buffer.ts";
import { Rng } from "../../lib/rng.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("activation buffer returns every row exactly once, in a shuffled order", () => {
  const seed = freshRng("actbuf").seed;
  const d = 3, n = 50;
  const buf = new ActivationBuffer(64, d, new Rng(seed));
  const rows = new Float32Array(n * d).map((_, i) => Math.floor(i / d)); // row r holds r, r, r
  assertEquals(buf.push(rows), n);
  const seen: number[] = [];
  while (buf.filled) {
    const b = buf.take(Math.min(7, buf.filled));
    for (let r = 0; r < b.length / d; r++) {
      assertEquals(b[r * d], b[r * d + 2]); // rows stay whole
      seen.push(b[r * d]);
    }
  }
  assertEquals([...seen].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  assert(seen.some((v, i) => v !== i), "order should be shuffled");
});

Deno.test("activation buffer: same seed, same batches; overfull push is reported", () => {
  const mk = () => {
    const b = new ActivationBuffer(10, 2, new Rng(42));
    assertEquals(b.push(new Float32Array(24).map((_, i) => i)), 10);
    return b.take(4);
  };
  assertEquals(mk(), mk());
  const b = new ActivationBuffer(4, 2, new Rng(1));
  assertThrows(() => b.push(new Float32Array(3)), RangeError, "whole number of rows");
  assertThrows(() => b.take(1), RangeError, "holds 0");
});
