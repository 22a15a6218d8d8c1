// The kernel helper: the struct text and the packed bytes come from one field list and agree with
// what a shader reads back; bad values, hand-written structs and a forgotten reset are named errors.
import { assertEquals, assertThrows } from "@std/assert";
import { createBuffer, poison, readBytes } from "../../gpu/buffers.ts";
import {
  Kernel,
  packArgs,
  structBytes,
  structWgsl,
  submitPass,
  UniformArena,
} from "../../gpu/kernel.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("kernel: struct text is padded to 16 bytes", () => {
  assertEquals(
    structWgsl("A", { x: "u32" }),
    "struct A { x: u32, _pad0: u32, _pad1: u32, _pad2: u32 }",
  );
  assertEquals(structBytes({ a: "u32", b: "f32", c: "i32", d: "u32", e: "f32" }), 32);
});

Deno.test("kernel: a shader reads back every field where TS packed it", async () => {
  const rng = freshRng("kernel");
  const { device } = await testGpu();
  const types = ["u32", "i32", "f32"] as const;
  for (let trial = 0; trial < 4; trial++) {
    const nf = 1 + rng.int(9);
    const fields: Record<string, "u32" | "i32" | "f32"> = {};
    const args: Record<string, number> = {};
    for (let i = 0; i < nf; i++) {
      const t = types[rng.int(3)];
      fields[`f${i}`] = t;
      args[`f${i}`] = t === "u32"
        ? rng.int(2 ** 32)
        : t === "i32"
        ? rng.int(2 ** 32) - 2 ** 31
        : Math.fround(rng.normal() * 1e3);
    }
    // Copies each field's bits into out[i].
    const body = Object.entries(fields).map(([f, t], i) =>
      `  out[${i}u] = ${t === "u32" ? `a.${f}` : `bitcast<u32>(a.${f})`};`
    ).join("\n");
    const source = `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> a: Args;
override WG: u32 = 1u;
@compute @workgroup_size(WG) fn main() {
${body}
}`;
    const k = new Kernel({ name: `probe${trial}`, struct: "Args", fields, wg: 1, source });
    const out = createBuffer(device, nf * 4);
    poison(device, out);
    const uniforms = new UniformArena(device, "test");
    submitPass(device, uniforms, "probe", (r) => k.record(r, "main", [out], args, { threads: 1 }));
    const got = new DataView(await readBytes(device, out, nf * 4));
    Object.entries(fields).forEach(([f, t], i) => {
      const v = t === "u32"
        ? got.getUint32(i * 4, true)
        : t === "i32"
        ? got.getInt32(i * 4, true)
        : got.getFloat32(i * 4, true);
      assertEquals(v, args[f], `${f}: ${t}`);
    });
    out.destroy();
    uniforms.destroy();
  }
});

Deno.test("kernel: values a field cannot hold are named errors", () => {
  const f = { n: "u32", x: "f32", s: "i32" } as const;
  assertThrows(
    () => packArgs("k", f, { n: -1, x: 0, s: 0 }),
    RangeError,
    "k: uniform field n (u32)",
  );
  assertThrows(() => packArgs("k", f, { n: 1.5, x: 0, s: 0 }), RangeError, "field n");
  assertThrows(() => packArgs("k", f, { n: 1, x: NaN, s: 0 }), RangeError, "field x (f32)");
  assertThrows(() => packArgs("k", f, { n: 1, x: 0, s: 2 ** 31 }), RangeError, "field s (i32)");
});

Deno.test("kernel: a shader that declares the struct itself is refused", () => {
  assertThrows(
    () =>
      new Kernel({
        name: "dup",
        struct: "Args",
        fields: { n: "u32" },
        wg: 1,
        source: "struct Args { n: u32 }",
      }),
    Error,
    "dup: the shader declares struct Args itself",
  );
});

Deno.test("kernel: an arena never reset is an error, not a leak", async () => {
  const { device } = await testGpu();
  const u = new UniformArena(device, "leaky");
  const bytes = new ArrayBuffer(16);
  for (let i = 0; i < 4096; i++) u.take(bytes);
  assertThrows(() => u.take(bytes), Error, "leaky: 4096 dispatches without reset()");
  u.reset();
  u.take(bytes);
  u.destroy();
});
