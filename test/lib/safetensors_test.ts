import { assertEquals, assertThrows } from "@std/assert";
import {
  f32,
  need,
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  tensorOf,
} from "../../lib/safetensors.ts";
import { freshRng } from "../util/rand.ts";

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
    await Deno.readFile(new URL("../../fixtures/tiny-neox/reference.safetensors", import.meta.url)),
  );
  assertEquals(need(ref, "recon").shape, [4, 64, 128]);
  assertEquals(need(ref, "input_ids").dtype, "I64");
});

Deno.test("f32 reads F16 and BF16 tensors as float32, after a round trip through the file", () => {
  const rng = freshRng("safetensors half");
  const n = 1 + rng.int(300);
  const values = Array.from({ length: n }, () => rng.normal() * 100);
  const f16 = Float16Array.from(values);
  const bf16 = Uint16Array.from(
    values,
    (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16,
  );
  const file = parseSafetensors(serializeSafetensors(
    new Map([
      ["h", { dtype: "F16", shape: [n], bytes: new Uint8Array(f16.buffer) }],
      ["b", { dtype: "BF16", shape: [n], bytes: new Uint8Array(bf16.buffer) }],
    ]),
  ));
  assertEquals([...f32(need(file, "h"))], [...Float32Array.from(f16)]);
  const bfWant = Float32Array.from(
    bf16,
    (u) => new Float32Array(Uint32Array.of(u << 16).buffer)[0],
  );
  assertEquals([...f32(need(file, "b"))], [...bfWant]);
  assertThrows(() => f32({ dtype: "I64", shape: [1], bytes: new Uint8Array(8) }), Error, "I64");
});
