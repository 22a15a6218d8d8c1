// safetensors read/write: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, "__metadata__"?: {…}}, then the raw little-endian bytes.
// (The npm registry has no maintained implementation; the format is small enough to own.)
import { halfBitsToFloat32 } from "./half.ts";

export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "U32"
  | "BOOL";

export interface StTensor {
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes (a copy, aligned to the element size). */
  bytes: Uint8Array;
}

export type StFile = { tensors: Map<string, StTensor>; metadata: Record<string, string> };

const SIZE: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U32: 4,
  BOOL: 1,
};

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

export function parseSafetensors(buf: Uint8Array): StFile {
  if (buf.byteLength < 8) {
    throw new SafetensorsError("file is shorter than its 8-byte header length");
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (8 + n > buf.byteLength) {
    throw new SafetensorsError(`header length ${n} runs past the file end`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    throw new SafetensorsError(`header is not JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError("header must be a JSON object of tensors");
  }
  const base = 8 + n;
  const dataBytes = buf.byteLength - base;
  const tensors = new Map<string, StTensor>();
  const spans: [number, number, string][] = [];
  let metadata: Record<string, string> = {};
  const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = v as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = (v ?? {}) as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in SIZE)) {
      throw new SafetensorsError(`tensor ${name}: dtype: unsupported ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw new SafetensorsError(
        `tensor ${name}: shape must be a list of non-negative integers, found ${
          JSON.stringify(shape)
        }`,
      );
    }
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every(isCount)) {
      throw new SafetensorsError(
        `tensor ${name}: data_offsets must be two non-negative integers, found ${
          JSON.stringify(data_offsets)
        }`,
      );
    }
    const [s, e] = data_offsets as [number, number];
    const want = shape.reduce((a: number, b: number) => a * b, 1) * SIZE[dtype as DType];
    if (s > e || e > dataBytes) {
      throw new SafetensorsError(
        `tensor ${name}: data_offsets [${s}, ${e}] are not an ordered range inside the ` +
          `${dataBytes}-byte data section`,
      );
    }
    if (e - s !== want) {
      throw new SafetensorsError(
        `tensor ${name}: data_offsets [${s}, ${e}] hold ${e - s} bytes, but shape [${shape}] ` +
          `${dtype} needs ${want}`,
      );
    }
    spans.push([s, e, name]);
    tensors.set(name, { dtype: dtype as DType, shape, bytes: buf.slice(base + s, base + e) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) {
      throw new SafetensorsError(
        `tensor ${spans[i][2]}: data_offsets overlap those of tensor ${spans[i - 1][2]}`,
      );
    }
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string | URL): Promise<StFile> {
  return parseSafetensors(await Deno.readFile(path));
}

export function serializeSafetensors(
  tensors: Map<string, StTensor> | Record<string, StTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of entries) {
    const want = t.shape.reduce((a, b) => a * b, 1) * SIZE[t.dtype];
    if (t.bytes.byteLength !== want) {
      throw new SafetensorsError(
        `tensor ${name}: ${t.bytes.byteLength} bytes for shape [${t.shape}] ${t.dtype}`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + want] };
    off += want;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // keep the data 8-byte aligned
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.byteLength), true);
  out.set(hbytes, 8);
  let p = 8 + hbytes.byteLength;
  for (const [, t] of entries) {
    out.set(t.bytes, p);
    p += t.bytes.byteLength;
  }
  return out;
}

export async function writeSafetensors(
  path: string | URL,
  tensors: Map<string, StTensor> | Record<string, StTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  // Write then rename, so a reader never sees half a file.
  const tmp = `${path instanceof URL ? path.pathname : path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeFile(tmp, serializeSafetensors(tensors, metadata));
  await Deno.rename(tmp, path);
}

// Typed views.

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(["F32", "F64", "F16", "BF16"]);

/** A float tensor as float32: a view of F32 bytes, a converted copy of F64, F16 and BF16. */
export function f32(t: StTensor, name = "tensor"): Float32Array {
  const b = t.bytes;
  switch (t.dtype) {
    case "F32":
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    case "F64":
      return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8));
    case "F16":
    case "BF16": {
      const bits = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
      return halfBitsToFloat32(bits, t.dtype === "F16" ? "f16" : "bf16");
    }
  }
  throw new SafetensorsError(
    `${name}: expected a float dtype (F32, F64, F16, BF16), found ${t.dtype}`,
  );
}

export function f64(t: StTensor, name = "tensor"): Float64Array {
  if (t.dtype === "F64") {
    return new Float64Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 8);
  }
  return Float64Array.from(f32(t, name));
}

export function i64(t: StTensor, name = "tensor"): BigInt64Array {
  if (t.dtype !== "I64") throw new SafetensorsError(`${name}: expected I64, found ${t.dtype}`);
  return new BigInt64Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 8);
}

export function tensorOf(
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint32Array | Uint8Array,
  shape: number[],
): StTensor {
  const dtype: DType = data instanceof Float32Array
    ? "F32"
    : data instanceof Float64Array
    ? "F64"
    : data instanceof BigInt64Array
    ? "I64"
    : data instanceof Int32Array
    ? "I32"
    : data instanceof Uint32Array
    ? "U32"
    : "U8";
  return {
    dtype,
    shape,
    bytes: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  };
}

/** Returns the tensor or throws an error naming what is missing and what the file has. */
export function need(file: StFile, name: string, shape?: number[]): StTensor {
  const t = file.tensors.get(name);
  if (!t) {
    throw new SafetensorsError(
      `missing tensor "${name}" (the file has: ${[...file.tensors.keys()].join(", ")})`,
    );
  }
  if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
    throw new SafetensorsError(`tensor "${name}": expected shape [${shape}], found [${t.shape}]`);
  }
  return t;
}
