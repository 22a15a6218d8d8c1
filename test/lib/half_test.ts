import { assertEquals } from "@std/assert";
import { halfBitsToFloat32 } from "../../lib/half.ts";

Deno.test("f16 → f32: all 65,536 bit patterns as the runtime's Float16Array reads them", () => {
  const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const got = halfBitsToFloat32(bits, "f16");
  const want = new DataView(bits.buffer);
  for (let i = 0; i < bits.length; i++) {
    const w = want.getFloat16(2 * i, true);
    if (!(Object.is(got[i], w) || (Number.isNaN(got[i]) && Number.isNaN(w)))) {
      throw new Error(`0x${i.toString(16)}: got ${got[i]}, want ${w}`);
    }
  }
});

Deno.test("bf16 → f32: all 65,536 bit patterns are float32's top half, low half zero", () => {
  const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const got = new Uint32Array(halfBitsToFloat32(bits, "bf16").buffer);
  for (let i = 0; i < bits.length; i++) {
    if (got[i] !== i * 65536) throw new Error(`0x${i.toString(16)}: bits ${got[i].toString(16)}`);
  }
  assertEquals(got.length, 65536);
});
