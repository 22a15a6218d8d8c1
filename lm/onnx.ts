// ONNX protobuf I/O through onnx-proto (protobufjs). The IR everywhere in lm/ is onnx.ModelProto
// as decoded here: graph surgery and autodiff edit these objects and re-encode them.
import onnxProto from "onnx-proto";
import {
  type FileAccess,
  readAt,
  readConfined,
  resolveConfined,
  resolveInside,
} from "../lib/confined_fs.ts";
import { halfBitsToFloat32 } from "../lib/half.ts";

// deno-lint-ignore no-explicit-any
export const onnx: typeof import("onnx-proto").onnx = (onnxProto as any).onnx;
export type ModelProto = import("onnx-proto").onnx.ModelProto;
export type GraphProto = import("onnx-proto").onnx.IGraphProto;
export type NodeProto = import("onnx-proto").onnx.INodeProto;
export type TensorProto = import("onnx-proto").onnx.ITensorProto;
export type ValueInfoProto = import("onnx-proto").onnx.IValueInfoProto;
export type AttributeProto = import("onnx-proto").onnx.IAttributeProto;

export const DataType = onnx.TensorProto.DataType;

/** Integer element types. BOOL is not among them (ops treat it apart); add it where meant. */
export const INT_TYPES: ReadonlySet<number> = new Set<number>([
  DataType.INT64,
  DataType.INT32,
  DataType.INT16,
  DataType.INT8,
  DataType.UINT8,
  DataType.UINT16,
  DataType.UINT32,
  DataType.UINT64,
]);
/** Floating-point element types. */
export const FLOAT_TYPES: ReadonlySet<number> = new Set<number>([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.FLOAT16,
  DataType.BFLOAT16,
]);
/** 16-bit float element types, which splice computes in float32. */
export const HALF_TYPES: ReadonlySet<number> = new Set<number>([
  DataType.FLOAT16,
  DataType.BFLOAT16,
]);

/**
 * A value's declared dims, each a number, a symbolic name, or undefined where the export gives
 * neither; undefined when it declares no shape at all.
 */
export function declaredDims(v: ValueInfoProto): (number | string | undefined)[] | undefined {
  const shape = v.type?.tensorType?.shape;
  if (!shape) return undefined;
  return (shape.dim ?? []).map((d) => {
    if (d.dimParam) return d.dimParam;
    // A dim_value of 0 is a real 0 (an empty past), so presence is what counts.
    if (Object.hasOwn(d, "dimValue") && d.dimValue !== null && d.dimValue !== undefined) {
      return num(d.dimValue as number);
    }
    return undefined;
  });
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

export type Long = { toNumber(): number };
export type TensorArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

/**
 * int64 proto fields decode as Long objects (protobufjs with `long` installed) or numbers; typed
 * int64 arrays hold bigints.
 */
export function num(x: number | bigint | Long | null | undefined): number {
  if (x === null || x === undefined) return 0;
  if (typeof x === "number") return x;
  return typeof x === "bigint" ? Number(x) : x.toNumber();
}

const ELEM_SIZE: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.DOUBLE]: 8,
  [DataType.INT64]: 8,
  [DataType.UINT64]: 8,
  [DataType.INT32]: 4,
  [DataType.UINT32]: 4,
  [DataType.INT16]: 2,
  [DataType.UINT16]: 2,
  [DataType.FLOAT16]: 2,
  [DataType.BFLOAT16]: 2,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
  [DataType.BOOL]: 1,
};

export function elemSize(dataType: number): number {
  const s = ELEM_SIZE[dataType];
  if (!s) throw new Error(`ONNX data type ${DataType[dataType] ?? dataType} is not supported here`);
  return s;
}

function viewOf(dataType: number, buf: ArrayBuffer, n: number): TensorArray {
  switch (dataType) {
    case DataType.FLOAT:
      return new Float32Array(buf, 0, n);
    case DataType.DOUBLE:
      return new Float64Array(buf, 0, n);
    case DataType.INT64:
      return new BigInt64Array(buf, 0, n);
    case DataType.UINT64:
      return new BigUint64Array(buf, 0, n);
    case DataType.INT32:
      return new Int32Array(buf, 0, n);
    case DataType.UINT32:
      return new Uint32Array(buf, 0, n);
    case DataType.INT16:
      return new Int16Array(buf, 0, n);
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return new Uint16Array(buf, 0, n);
    case DataType.INT8:
      return new Int8Array(buf, 0, n);
    case DataType.UINT8:
    case DataType.BOOL:
      return new Uint8Array(buf, 0, n);
  }
  throw new Error(`ONNX data type ${DataType[dataType] ?? dataType} is not supported here`);
}

export function tensorDims(t: TensorProto): number[] {
  return (t.dims ?? []).map((d) => num(d as number | Long));
}

/**
 * The values of a tensor as a fresh typed array (FLOAT16/BFLOAT16 as raw Uint16 bits, BOOL as
 * Uint8). Reads raw_data or the typed repeated fields; external data must be resolved first.
 */
export function tensorToArray(t: TensorProto): TensorArray {
  const dt = t.dataType ?? 0;
  const n = tensorDims(t).reduce((a, b) => a * b, 1);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new Error(
      `tensor ${t.name}: its data is external (${externalInfo(t).location}); load the model with ` +
        `loadModel(path) so that external data is read in`,
    );
  }
  const size = elemSize(dt);
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== n * size) {
      throw new Error(`tensor ${t.name}: raw_data has ${t.rawData.length} bytes, want ${n * size}`);
    }
    const copy = new Uint8Array(n * size);
    copy.set(t.rawData);
    return viewOf(dt, copy.buffer, n);
  }
  const out = viewOf(dt, new ArrayBuffer(n * size), n);
  let src: ArrayLike<number | Long> | undefined;
  switch (dt) {
    case DataType.FLOAT:
      src = t.floatData ?? undefined;
      break;
    case DataType.DOUBLE:
      src = t.doubleData ?? undefined;
      break;
    case DataType.INT64:
      src = t.int64Data as ArrayLike<number | Long> ?? undefined;
      break;
    case DataType.UINT64:
    case DataType.UINT32:
      src = t.uint64Data as ArrayLike<number | Long> ?? undefined;
      break;
    default:
      src = t.int32Data ?? undefined;
  }
  const len = src?.length ?? 0;
  if (len !== n) {
    throw new Error(`tensor ${t.name}: holds ${len} values, want ${n} for dims [${tensorDims(t)}]`);
  }
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) {
      const v = src![i] as unknown;
      out[i] = typeof v === "number" ? BigInt(v) : BigInt((v as { toString(): string }).toString());
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = num(src![i]);
  }
  return out;
}

function dataTypeOf(data: TensorArray): number {
  if (data instanceof Float32Array) return DataType.FLOAT;
  if (data instanceof Float64Array) return DataType.DOUBLE;
  if (data instanceof BigInt64Array) return DataType.INT64;
  if (data instanceof BigUint64Array) return DataType.UINT64;
  if (data instanceof Int32Array) return DataType.INT32;
  if (data instanceof Uint32Array) return DataType.UINT32;
  if (data instanceof Int16Array) return DataType.INT16;
  if (data instanceof Uint16Array) return DataType.UINT16;
  if (data instanceof Int8Array) return DataType.INT8;
  return DataType.UINT8;
}

/**
 * A tensor holding a copy of `data` as raw_data. The data type follows the array type; pass
 * `dataType` for BOOL (Uint8Array) or FLOAT16/BFLOAT16 (Uint16Array bits).
 */
export function makeTensor(
  name: string,
  data: TensorArray,
  dims: number[],
  dataType = dataTypeOf(data),
): TensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  if (n !== data.length) {
    throw new Error(`makeTensor ${name}: ${data.length} values do not fill dims [${dims}]`);
  }
  if (elemSize(dataType) !== data.BYTES_PER_ELEMENT) {
    throw new Error(`makeTensor ${name}: ${DataType[dataType]} does not match the array type`);
  }
  const rawData = new Uint8Array(data.byteLength);
  rawData.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return onnx.TensorProto.create({ name, dims, dataType, rawData });
}

/** A FLOAT16 or BFLOAT16 tensor as a FLOAT one (every half value is exact in float32). */
export function widenHalfTensor(t: TensorProto): TensorProto {
  const bits = tensorToArray(t) as Uint16Array;
  const out = halfBitsToFloat32(bits, t.dataType === DataType.BFLOAT16 ? "bf16" : "f16");
  return makeTensor(t.name ?? "", out, tensorDims(t), DataType.FLOAT);
}

// Decoded messages keep defaults (shared, frozen empty arrays) on their prototypes and encode only
// own properties, so a clone copies own properties onto an object with the same prototype. Byte
// buffers (raw_data) are shared: nothing in lm/ writes into them, which keeps clones of large
// models cheap.
function deepClone<T>(x: T): T {
  if (x === null || typeof x !== "object") return x;
  if (ArrayBuffer.isView(x)) return x;
  if (Array.isArray(x)) return x.map(deepClone) as T;
  const proto = Object.getPrototypeOf(x);
  // Long values are immutable.
  if (proto && typeof (x as unknown as Long).toNumber === "function" && "low" in x) return x;
  const out = Object.create(proto);
  for (const k of Object.keys(x)) out[k] = deepClone((x as Record<string, unknown>)[k]);
  return out;
}

export function cloneModel(m: ModelProto): ModelProto {
  return deepClone(m);
}

/** A tensor's external-data entry, with offset and length checked to be whole byte counts. */
export function externalInfo(
  t: TensorProto,
): { location: string; offset: number; length?: number } {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
  const location = kv.get("location");
  if (!location) throw new Error(`tensor ${t.name}: external data without a location`);
  const count = (key: string): number | undefined => {
    const v = kv.get(key);
    if (v === undefined) return undefined;
    const n = /^[0-9]{1,16}$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) {
      throw new Error(
        `tensor ${t.name}: external data "${key}" must be a non-negative integer, found ` +
          `${JSON.stringify(v.slice(0, 40))}`,
      );
    }
    return n;
  };
  return { location, offset: count("offset") ?? 0, length: count("length") };
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : path.slice(0, i) || "/";
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Every tensor in the model: initializers and tensor attributes, in subgraphs too. */
function allTensors(g: GraphProto | null | undefined, out: TensorProto[] = []): TensorProto[] {
  if (!g) return out;
  out.push(...(g.initializer ?? []));
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) out.push(a.t);
      out.push(...(a.tensors ?? []));
      allTensors(a.g, out);
      for (const sg of a.graphs ?? []) allTensors(sg, out);
    }
  }
  return out;
}

export interface LoadModelOptions {
  /**
   * Directories the model file must lie in (real path, symlinks followed). Without it the path is
   * the caller's own (a CLI argument, a fixture) and only regular-file and size checks apply.
   */
  access?: FileAccess;
  /** Largest model file, and largest total of external data, in bytes (default 16 GiB each). */
  maxBytes?: number;
  /** How errors name the model file (default: its path as given). */
  label?: string;
}

const DEFAULT_MAX_MODEL_BYTES = 16 * 2 ** 30;
/** protobuf cannot encode a message over 2 GiB, so no valid .onnx file is larger. */
const PROTOBUF_MAX_BYTES = 2 ** 31;

/** The byte count of a tensor's data from its dims, refusing negative or absurd dims. */
function tensorBytes(t: TensorProto): number {
  const dims = tensorDims(t);
  let n = elemSize(t.dataType ?? 0);
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`tensor ${t.name}: dims [${dims}] are not non-negative integers`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new Error(`tensor ${t.name}: dims [${dims}] are too large`);
  return n;
}

/**
 * Reads a model; tensors whose data lives in an external file (data_location EXTERNAL) get it
 * read into raw_data. Each location must be a regular file inside the model's own folder (no
 * "..", no absolute path, no symlink out, no device or FIFO); offset + length must lie inside the
 * file, and the total read may not exceed the real sizes of the files named, so dims cannot make
 * us allocate more than is on disk. Errors name tensors and locations, never absolute paths.
 */
export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<ModelProto> {
  const label = opts.label ?? path;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_MODEL_BYTES;
  // Without access roots the path is the caller's own, so a symlink to anywhere is fine.
  const real = opts.access
    ? (await resolveConfined(path, opts.access, label)).real
    : await Deno.realPath(path);
  const model = decodeModel(
    await readConfined(real, { roots: [dirOf(real)] }, {
      maxBytes: Math.min(maxBytes, PROTOBUF_MAX_BYTES),
      label,
    }),
  );
  const dir = dirOf(real);
  const files = new Map<string, { file: Deno.FsFile; size: number }>();
  try {
    let total = 0, onDisk = 0;
    for (const t of allTensors(model.graph)) {
      if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
      const { location, offset, length } = externalInfo(t);
      const what = `tensor ${t.name}: external data "${location}"`;
      const n = tensorBytes(t);
      if (length !== undefined && length !== n) {
        throw new Error(`${what}: length ${length}, but dims [${tensorDims(t)}] need ${n} bytes`);
      }
      let f: { file: Deno.FsFile; size: number } | undefined;
      try {
        const { real: file, size } = await resolveInside(
          dir,
          location,
          location,
          "the model's folder",
        );
        f = files.get(file);
        if (!f) {
          f = { file: await Deno.open(file, { read: true }), size };
          files.set(file, f);
          onDisk += size;
        }
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`);
      }
      if (offset + n > f.size) {
        throw new Error(
          `${what}: offset ${offset} + ${n} bytes runs past its end (${f.size} bytes)`,
        );
      }
      total += n;
      if (total > onDisk || total > maxBytes) {
        throw new Error(
          `${what}: the external tensors add up to ${total} bytes, more than ` +
            (total > maxBytes ? `the ${maxBytes} allowed` : `the ${onDisk} bytes their files hold`),
        );
      }
      const bytes = await readAt(f.file, offset, n);
      if (bytes.length !== n) throw new Error(`${what}: the file ended early (it changed?)`);
      t.rawData = bytes;
      t.externalData = [];
      t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    }
  } finally {
    for (const f of files.values()) f.file.close();
  }
  return model;
}

export interface SaveOptions {
  /**
   * Initializers of at least this many bytes go to `<path>.data` (external data), so that models
   * over protobuf's 2 GB limit can be written. Default: everything inline.
   */
  externalDataThreshold?: number;
}

/** Writes a model; with externalDataThreshold, large initializers go to `<path>.data`. */
export async function saveModel(
  model: ModelProto,
  path: string,
  opts: SaveOptions = {},
): Promise<void> {
  const threshold = opts.externalDataThreshold;
  if (threshold === undefined) {
    await Deno.writeFile(path, encodeModel(model));
    return;
  }
  const dataPath = `${path}.data`;
  const { model: out, files } = externalize(model, threshold, () => baseOf(dataPath), Infinity);
  const f = await Deno.open(dataPath, { write: true, create: true, truncate: true });
  try {
    for (const chunk of files[0]?.chunks ?? []) await writeAll(f, chunk);
  } finally {
    f.close();
  }
  await Deno.writeFile(path, encodeModel(out));
}

/**
 * The model as ORT input with large initializers as in-memory external data: pass `bytes` to
 * InferenceSession.create and `externalData` as the session option of that name. This is how a
 * model over protobuf's 2 GB limit reaches ORT; data files are cut at `maxFileBytes` (1 GiB).
 */
export function toOrtInput(
  model: ModelProto,
  opts: { externalDataThreshold?: number; maxFileBytes?: number } = {},
): { bytes: Uint8Array; externalData: { path: string; data: Uint8Array }[] } {
  const { model: out, files } = externalize(
    model,
    opts.externalDataThreshold ?? 1024,
    (k) => `weights_${k}.data`,
    opts.maxFileBytes ?? 2 ** 30,
  );
  const externalData = files.map((f) => {
    const data = new Uint8Array(f.size);
    let o = 0;
    for (const c of f.chunks) {
      data.set(c, o);
      o += c.byteLength;
    }
    return { path: f.location, data };
  });
  return { bytes: encodeModel(out), externalData };
}

/**
 * A copy whose initializers of ≥ threshold bytes point into data files (64-byte aligned); the
 * files' contents come back as chunk lists. A new file starts when one would pass maxFileBytes.
 */
function externalize(
  model: ModelProto,
  threshold: number,
  fileName: (k: number) => string,
  maxFileBytes: number,
): { model: ModelProto; files: { location: string; chunks: Uint8Array[]; size: number }[] } {
  const out = cloneModel(model);
  const files: { location: string; chunks: Uint8Array[]; size: number }[] = [];
  for (const t of out.graph?.initializer ?? []) {
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      throw new Error(`tensor ${t.name}: still external; load the model with loadModel first`);
    }
    const dt = t.dataType ?? 0;
    if (!ELEM_SIZE[dt]) continue; // strings and such stay inline
    const nbytes = tensorDims(t).reduce((a, b) => a * b, 1) * elemSize(dt);
    if (nbytes < threshold || nbytes === 0) continue;
    let file = files.at(-1);
    if (!file || (file.size > 0 && file.size + 64 + nbytes > maxFileBytes)) {
      file = { location: fileName(files.length), chunks: [], size: 0 };
      files.push(file);
    }
    // 64-byte alignment lets readers map tensors straight out of the file.
    const pad = (64 - (file.size % 64)) % 64;
    if (pad) file.chunks.push(new Uint8Array(pad));
    const offset = file.size + pad;
    const arr = tensorToArray(t);
    file.chunks.push(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    file.size = offset + nbytes;
    for (const k of ["floatData", "int32Data", "int64Data", "doubleData", "uint64Data"] as const) {
      if (Object.hasOwn(t, k)) (t as Record<string, unknown>)[k] = [];
    }
    t.rawData = new Uint8Array(0);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [
      onnx.StringStringEntryProto.create({ key: "location", value: file.location }),
      onnx.StringStringEntryProto.create({ key: "offset", value: String(offset) }),
      onnx.StringStringEntryProto.create({ key: "length", value: String(nbytes) }),
    ];
  }
  return { model: out, files };
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await f.write(bytes.subarray(done));
}
