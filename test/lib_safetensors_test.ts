import { assertEquals, assertThrows } from "@std/assert";
import {
  f32,
  need,
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  tensorOf,
} from "../lib/safetensors.ts";
import { freshRng } from "./util/rand.ts";

Deno.test("safetensors round trip is bit-exact and keeps metadata", () => {
  const rng = freshRng("safetensors");
  const a = rng.normals(3 * 5);
  const b = new BigInt64Array([1n, -2n, 3n]);
  const bytes = serializeSafetensors({ a: tensorOf(a, [3, 5]), b: tensorOf(b, [3]) }, { k: "v" });
  const back = parseSafetensors(bytes);
  assertEquals(f32(need(back, "a", [3, 5])), a);
  assertEquals(back.tensors.get("b")!.shape, [3]);
  assertEquals(back.metadata, { k: "v" });
});

Deno.test("safetensors: missing tensor and wrong shape are named errors", () => {
  const file = parseSafetensors(serializeSafetensors({ w: tensorOf(new Float32Array(6), [2, 3]) }));
  assertThrows(() => need(file, "x"), SafetensorsError, 'missing tensor "x"');
  assertThrows(
    () => need(file, "w", [3, 2]),
    SafetensorsError,
    "expected shape [3,2], found [2,3]",
  );
});

Deno.test("safetensors reads the PyTorch fixture", async () => {
  const ref = parseSafetensors(
    await Deno.readFile(new URL("../fixtures/tiny-neox/reference.safetensors", import.meta.url)),
  );
  assertEquals(need(ref, "recon").shape, [4, 64, 128]);
  assertEquals(need(ref, "input_ids").dtype, "I64");
});
