// 16-bit floats widened to float32, for weights stored at half width (ONNX exports, safetensors).

/** IEEE half (its bits) as a number; every half is exact in float32. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Half-width bits as float32: bfloat16 is float32's top 16 bits, IEEE half is converted. */
export function halfBitsToFloat32(bits: Uint16Array, format: "f16" | "bf16"): Float32Array {
  if (format === "f16") return Float32Array.from(bits, halfToFloat);
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}
