// A small ONNX evaluator in float64. Two uses: (1) the gradient builder runs it in "shape mode"
// (big float tensors carry only dims; shape subgraphs carry values) to learn ranks, dtypes and
// broadcast axes at example dims; (2) tests run it fully as the float64 reference.
import {
  findAttr,
  getFloatAttr,
  getIntAttr,
  getIntsAttr,
  getStringAttr,
  opsetVersion,
} from "../graph.ts";
import {
  DataType,
  FLOAT_TYPES,
  INT_TYPES,
  type Long,
  type ModelProto,
  type NodeProto,
  num,
  onnx,
  type TensorProto,
} from "../onnx.ts";

export interface ETensor {
  dtype: number;
  dims: number[];
  /** Row-major values in float64 (ints and bools too); null in shape mode. */
  data: Float64Array | null;
}

export class EvalError extends Error {
  override name = "EvalError";
}

export class UnsupportedOpError extends EvalError {
  override name = "UnsupportedOpError";
}

/** dtype of tensors whose producer the evaluator does not know (shape mode only). */
export const UNKNOWN = -1;

export const numel = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

function strides(dims: readonly number[]): number[] {
  const s = new Array(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

/** Decodes a TensorProto (raw_data or typed fields) into float64 values. */
export function tensorFromProto(t: TensorProto, withData = true): ETensor {
  const dims = (t.dims ?? []).map(num);
  const dtype = t.dataType ?? DataType.FLOAT;
  // Weights stored outside the model file are never needed for shapes: keep their dims only.
  if (!withData || t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    return { dtype, dims, data: null };
  }
  const n = numel(dims);
  const out = new Float64Array(n);
  const raw = t.rawData && t.rawData.length ? t.rawData : null;
  if (raw) {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < n; i++) {
      switch (dtype) {
        case DataType.FLOAT:
          out[i] = dv.getFloat32(4 * i, true);
          break;
        case DataType.DOUBLE:
          out[i] = dv.getFloat64(8 * i, true);
          break;
        case DataType.INT64:
          out[i] = Number(dv.getBigInt64(8 * i, true));
          break;
        case DataType.INT32:
          out[i] = dv.getInt32(4 * i, true);
          break;
        case DataType.BOOL:
        case DataType.UINT8:
          out[i] = dv.getUint8(i);
          break;
        case DataType.INT8:
          out[i] = dv.getInt8(i);
          break;
        default:
          throw new EvalError(`tensor ${t.name}: data type ${dtype} is not supported`);
      }
    }
    return { dtype, dims, data: out };
  }
  const src: (number | Long)[] = dtype === DataType.FLOAT
    ? (t.floatData ?? [])
    : dtype === DataType.DOUBLE
    ? (t.doubleData ?? [])
    : dtype === DataType.INT64
    ? (t.int64Data ?? [])
    : (t.int32Data ?? []);
  if (src.length !== n) throw new EvalError(`tensor ${t.name}: ${src.length} values for ${n}`);
  for (let i = 0; i < n; i++) out[i] = num(src[i]);
  return { dtype, dims, data: out };
}

/** Encodes values as a TensorProto of the given type. */
export function tensorToProto(
  name: string,
  dtype: number,
  dims: readonly number[],
  values: ArrayLike<number>,
): TensorProto {
  const n = numel(dims);
  let raw: Uint8Array;
  if (dtype === DataType.FLOAT) raw = new Uint8Array(Float32Array.from(values).buffer);
  else if (dtype === DataType.DOUBLE) raw = new Uint8Array(Float64Array.from(values).buffer);
  else if (dtype === DataType.INT64) {
    raw = new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
  } else if (dtype === DataType.INT32) raw = new Uint8Array(Int32Array.from(values).buffer);
  else if (dtype === DataType.BOOL) raw = new Uint8Array(Uint8Array.from(values).buffer);
  else throw new EvalError(`tensorToProto: data type ${dtype} is not supported`);
  if (values.length !== n) throw new EvalError(`tensorToProto ${name}: ${values.length} for ${n}`);
  return onnx.TensorProto.create({ name, dataType: dtype, dims: [...dims], rawData: raw });
}

function bcastDims(a: readonly number[], b: readonly number[], what: string): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new EvalError(`${what}: shapes [${a}] and [${b}] do not broadcast`);
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Index map from output positions to a broadcast input's positions. */
function bcastIndex(inDims: readonly number[], outDims: readonly number[]): Int32Array {
  const n = numel(outDims), r = outDims.length;
  const pad = [...new Array(r - inDims.length).fill(1), ...inDims];
  const inS = strides(pad);
  const idx = new Int32Array(n);
  const pos = new Array(r).fill(0);
  for (let o = 0; o < n; o++) {
    let k = 0;
    for (let d = 0; d < r; d++) if (pad[d] !== 1) k += pos[d] * inS[d];
    idx[o] = k;
    for (let d = r - 1; d >= 0; d--) {
      if (++pos[d] < outDims[d]) break;
      pos[d] = 0;
    }
  }
  return idx;
}

function elementwise(
  ins: ETensor[],
  dtype: number,
  f: (...v: number[]) => number,
  what: string,
): ETensor {
  let dims: number[] = [];
  for (const t of ins) dims = bcastDims(dims, t.dims, what);
  if (ins.some((t) => !t.data)) return { dtype, dims, data: null };
  const n = numel(dims);
  const maps = ins.map((t) => bcastIndex(t.dims, dims));
  const out = new Float64Array(n);
  const vals = new Array(ins.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < ins.length; j++) vals[j] = ins[j].data![maps[j][i]];
    out[i] = f(...vals);
  }
  return { dtype, dims, data: out };
}

export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= -x * x / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 2 / Math.sqrt(Math.PI) * sum;
  }
  // erfc by its continued fraction, evaluated from the tail.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + (k / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

const normAxis = (a: number, r: number) => (a < 0 ? a + r : a);

function intsOf(t: ETensor | undefined, what: string): number[] {
  if (!t) throw new EvalError(`${what}: missing input`);
  if (!t.data) throw new EvalError(`${what}: value is not known at shape-evaluation time`);
  return Array.from(t.data);
}

function transpose(x: ETensor, perm: number[]): ETensor {
  const dims = perm.map((p) => x.dims[p]);
  if (!x.data) return { dtype: x.dtype, dims, data: null };
  const inS = strides(x.dims);
  const n = numel(dims), r = dims.length;
  const out = new Float64Array(n);
  const pos = new Array(r).fill(0);
  for (let o = 0; o < n; o++) {
    let k = 0;
    for (let d = 0; d < r; d++) k += pos[d] * inS[perm[d]];
    out[o] = x.data[k];
    for (let d = r - 1; d >= 0; d--) {
      if (++pos[d] < dims[d]) break;
      pos[d] = 0;
    }
  }
  return { dtype: x.dtype, dims, data: out };
}

function reduce(
  x: ETensor,
  axes: number[] | null,
  keep: boolean,
  kind: "sum" | "mean" | "max",
): ETensor {
  const r = x.dims.length;
  const ax = new Set(
    (axes && axes.length ? axes : [...Array(r).keys()]).map((a) => normAxis(a, r)),
  );
  const keptDims = x.dims.map((d, i) => (ax.has(i) ? 1 : d));
  const dims = keep ? keptDims : x.dims.filter((_, i) => !ax.has(i));
  if (!x.data) return { dtype: x.dtype, dims, data: null };
  const out = new Float64Array(numel(keptDims)).fill(kind === "max" ? -Infinity : 0);
  const oS = strides(keptDims);
  const pos = new Array(r).fill(0);
  for (let i = 0; i < x.data.length; i++) {
    let k = 0;
    for (let d = 0; d < r; d++) if (!ax.has(d)) k += pos[d] * oS[d];
    out[k] = kind === "max" ? Math.max(out[k], x.data[i]) : out[k] + x.data[i];
    for (let d = r - 1; d >= 0; d--) {
      if (++pos[d] < x.dims[d]) break;
      pos[d] = 0;
    }
  }
  if (kind === "mean") {
    const c = x.data.length / Math.max(out.length, 1);
    for (let i = 0; i < out.length; i++) out[i] /= c;
  }
  return { dtype: x.dtype, dims, data: out };
}

/** Applies f to each 1-D lane along `axis` (in place on a copy). */
function lanes(x: ETensor, axis: number, f: (v: Float64Array) => void): ETensor {
  const r = x.dims.length, a = normAxis(axis, r);
  if (!x.data) return { ...x, data: null };
  const n = x.dims[a], inner = numel(x.dims.slice(a + 1)), outer = numel(x.dims.slice(0, a));
  const out = Float64Array.from(x.data);
  const lane = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      for (let j = 0; j < n; j++) lane[j] = out[(o * n + j) * inner + i];
      f(lane);
      for (let j = 0; j < n; j++) out[(o * n + j) * inner + i] = lane[j];
    }
  }
  return { dtype: x.dtype, dims: x.dims.slice(), data: out };
}

function sliceAxis(x: ETensor, axis: number, idx: number[]): ETensor {
  // Gather along one axis with already-normalised indices (result keeps the axis).
  const dims = x.dims.slice();
  dims[axis] = idx.length;
  if (!x.data) return { dtype: x.dtype, dims, data: null };
  const inner = numel(x.dims.slice(axis + 1)), outer = numel(x.dims.slice(0, axis));
  const out = new Float64Array(numel(dims));
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const j of idx) {
      const base = (o * x.dims[axis] + j) * inner;
      for (let i = 0; i < inner; i++) out[k++] = x.data[base + i];
    }
  }
  return { dtype: x.dtype, dims, data: out };
}

function matmul(a: ETensor, b: ETensor, dtype: number): ETensor {
  const ad = a.dims.length === 1 ? [1, a.dims[0]] : a.dims;
  const bd = b.dims.length === 1 ? [b.dims[0], 1] : b.dims;
  const [m, k] = ad.slice(-2), [k2, n] = bd.slice(-2);
  if (k !== k2) throw new EvalError(`MatMul: inner dims differ ([${a.dims}] @ [${b.dims}])`);
  const batch = bcastDims(ad.slice(0, -2), bd.slice(0, -2), "MatMul");
  let dims = [...batch, m, n];
  if (a.dims.length === 1) dims = [...batch, n];
  if (b.dims.length === 1) dims = a.dims.length === 1 ? [...batch] : [...batch, m];
  if (!a.data || !b.data) return { dtype, dims, data: null };
  const nb = numel(batch);
  const ia = bcastIndex(ad.slice(0, -2), batch), ib = bcastIndex(bd.slice(0, -2), batch);
  const out = new Float64Array(nb * m * n);
  for (let z = 0; z < nb; z++) {
    const ao = ia[z] * m * k, bo = ib[z] * k * n, oo = z * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) s += a.data[ao + i * k + l] * b.data[bo + l * n + j];
        out[oo + i * n + j] = s;
      }
    }
  }
  return { dtype, dims, data: out };
}

function castValue(v: number, to: number): number {
  if (FLOAT_TYPES.has(to)) return to === DataType.FLOAT ? Math.fround(v) : v;
  if (to === DataType.BOOL) return v !== 0 ? 1 : 0;
  if (INT_TYPES.has(to)) return Math.trunc(v);
  throw new EvalError(`Cast: target type ${to} is not supported`);
}

// Ops whose listed inputs must share one element type (ONNX type constraint T).
const SAME_TYPE: Record<string, number[] | "all"> = {
  Add: "all",
  Sub: "all",
  Mul: "all",
  Div: "all",
  Max: "all",
  Min: "all",
  Sum: "all",
  Equal: "all",
  Less: "all",
  Greater: "all",
  LessOrEqual: "all",
  GreaterOrEqual: "all",
  MatMul: "all",
  Gemm: "all",
  Concat: "all",
  Range: "all",
  Where: [1, 2],
  LayerNormalization: "all",
  SimplifiedLayerNormalization: "all",
};
const INT64_INPUTS: Record<string, number[]> = {
  Reshape: [1],
  Expand: [1],
  Unsqueeze: [1],
  Squeeze: [1],
  ReduceSum: [1],
  Split: [1],
  Pad: [1],
  ConstantOfShape: [0],
  Trilu: [1],
};

function checkTypes(op: string, ins: (ETensor | undefined)[], what: string): void {
  const same = SAME_TYPE[op];
  if (same) {
    const idx = same === "all" ? ins.map((_, i) => i) : same;
    const ts = idx.map((i) => ins[i]?.dtype).filter((d): d is number =>
      d !== undefined && d !== UNKNOWN
    );
    if (ts.some((d) => d !== ts[0])) {
      throw new EvalError(`${what}: input types differ (${ts.join(", ")})`);
    }
  }
  for (const i of INT64_INPUTS[op] ?? []) {
    const d = ins[i]?.dtype;
    if (d !== undefined && d !== UNKNOWN && d !== DataType.INT64) {
      throw new EvalError(`${what}: input ${i} must be int64, found type ${d}`);
    }
  }
}

export interface EvalContext {
  opset: number;
}

/** Evaluates one node. Inputs that are absent (optional) are undefined. */
export function evalNode(
  node: NodeProto,
  ins: (ETensor | undefined)[],
  ctx: EvalContext,
): ETensor[] {
  const op = node.opType!;
  const what = `${op} node "${node.name}"`;
  checkTypes(op, ins, what);
  const x = ins[0]!;
  const un = (f: (v: number) => number) => [elementwise([x], x.dtype, f, what)];
  const isInt = (t: ETensor) => INT_TYPES.has(t.dtype);
  switch (op) {
    case "Constant": {
      const v = findAttr(node, "value");
      if (v?.t) return [tensorFromProto(v.t)];
      const vf = findAttr(node, "value_float"), vi = findAttr(node, "value_int");
      const vfs = findAttr(node, "value_floats"), vis = findAttr(node, "value_ints");
      if (vf) return [{ dtype: DataType.FLOAT, dims: [], data: Float64Array.of(vf.f ?? 0) }];
      if (vi) return [{ dtype: DataType.INT64, dims: [], data: Float64Array.of(num(vi.i)) }];
      if (vfs) {
        return [{
          dtype: DataType.FLOAT,
          dims: [vfs.floats!.length],
          data: Float64Array.from(vfs.floats!),
        }];
      }
      if (vis) {
        const d = vis.ints!.map(num);
        return [{ dtype: DataType.INT64, dims: [d.length], data: Float64Array.from(d) }];
      }
      throw new EvalError(`${what}: unsupported Constant form`);
    }
    case "Identity":
      return [x];
    case "Cast": {
      const to = getIntAttr(node, "to", 1);
      return [elementwise([x], to, (v) => castValue(v, to), what)];
    }
    case "Shape": {
      const r = x.dims.length;
      let s = getIntAttr(node, "start", 0), e = getIntAttr(node, "end", r);
      s = Math.min(Math.max(normAxis(s, r), 0), r);
      e = Math.min(Math.max(normAxis(e, r), 0), r);
      const d = x.dims.slice(s, e);
      return [{ dtype: DataType.INT64, dims: [d.length], data: Float64Array.from(d) }];
    }
    case "Size":
      return [{ dtype: DataType.INT64, dims: [], data: Float64Array.of(numel(x.dims)) }];
    case "ConstantOfShape": {
      const dims = intsOf(x, what);
      const v = findAttr(node, "value");
      const t = v?.t
        ? tensorFromProto(v.t)
        : { dtype: DataType.FLOAT, dims: [1], data: Float64Array.of(0) };
      return [{ dtype: t.dtype, dims, data: new Float64Array(numel(dims)).fill(t.data![0]) }];
    }
    case "Range": {
      const [s, l, d] = [0, 1, 2].map((i) => intsOf(ins[i], what)[0]);
      const n = Math.max(Math.ceil((l - s) / d), 0);
      return [{
        dtype: x.dtype,
        dims: [n],
        data: Float64Array.from({ length: n }, (_, i) => s + i * d),
      }];
    }
    case "Add":
      return [elementwise([x, ins[1]!], x.dtype, (a, b) => a + b, what)];
    case "Sub":
      return [elementwise([x, ins[1]!], x.dtype, (a, b) => a - b, what)];
    case "Mul":
      return [elementwise([x, ins[1]!], x.dtype, (a, b) => a * b, what)];
    case "Div":
      return [
        elementwise(
          [x, ins[1]!],
          x.dtype,
          isInt(x) ? (a, b) => Math.trunc(a / b) : (a, b) => a / b,
          what,
        ),
      ];
    case "Pow":
      return [elementwise([x, ins[1]!], x.dtype, (a, b) => Math.pow(a, b), what)];
    case "Max":
      return [elementwise(ins as ETensor[], x.dtype, (...v) => Math.max(...v), what)];
    case "Min":
      return [elementwise(ins as ETensor[], x.dtype, (...v) => Math.min(...v), what)];
    case "Sum":
      return [elementwise(ins as ETensor[], x.dtype, (...v) => v.reduce((p, q) => p + q, 0), what)];
    case "Equal":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a === b), what)];
    case "Less":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a < b), what)];
    case "Greater":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a > b), what)];
    case "LessOrEqual":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a <= b), what)];
    case "GreaterOrEqual":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a >= b), what)];
    case "And":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a && b), what)];
    case "Or":
      return [elementwise([x, ins[1]!], DataType.BOOL, (a, b) => +(a || b), what)];
    case "Not":
      return [elementwise([x], DataType.BOOL, (a) => +!a, what)];
    case "Where":
      return [elementwise([x, ins[1]!, ins[2]!], ins[1]!.dtype, (c, a, b) => (c ? a : b), what)];
    case "Neg":
      return un((v) => -v);
    case "Sqrt":
      return un(Math.sqrt);
    case "Reciprocal":
      return un((v) => 1 / v);
    case "Exp":
      return un(Math.exp);
    case "Log":
      return un(Math.log);
    case "Tanh":
      return un(Math.tanh);
    case "Sigmoid":
      return un((v) => 1 / (1 + Math.exp(-v)));
    case "Erf":
      return un(erf);
    case "Sin":
      return un(Math.sin);
    case "Cos":
      return un(Math.cos);
    case "Relu":
      return un((v) => Math.max(v, 0));
    case "Abs":
      return un(Math.abs);
    case "Floor":
      return un(Math.floor);
    case "Ceil":
      return un(Math.ceil);
    case "Sign":
      return un(Math.sign);
    case "Softplus":
      return un((v) => Math.log1p(Math.exp(v)));
    case "MatMul":
      return [matmul(x, ins[1]!, x.dtype)];
    case "Gemm": {
      const ta = getIntAttr(node, "transA", 0), tb = getIntAttr(node, "transB", 0);
      const alpha = getFloatAttr(node, "alpha", 1), beta = getFloatAttr(node, "beta", 1);
      const a = ta ? transpose(x, [1, 0]) : x, b = tb ? transpose(ins[1]!, [1, 0]) : ins[1]!;
      let y = matmul(a, b, x.dtype);
      y = elementwise([y], y.dtype, (v) => alpha * v, what);
      if (ins[2]) y = elementwise([y, ins[2]], y.dtype, (p, c) => p + beta * c, what);
      return [y];
    }
    case "Transpose": {
      const perm = getIntsAttr(node, "perm") ?? [...Array(x.dims.length).keys()].reverse();
      return [transpose(x, perm)];
    }
    case "Reshape": {
      const want = intsOf(ins[1], what);
      const allowZero = getIntAttr(node, "allowzero", 0);
      const dims = want.map((d, i) => (d === 0 && !allowZero ? x.dims[i] : d));
      const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      const dd = dims.map((d) => (d === -1 ? numel(x.dims) / known : d));
      if (numel(dd) !== numel(x.dims)) {
        throw new EvalError(`${what}: cannot reshape [${x.dims}] to [${want}]`);
      }
      return [{ dtype: x.dtype, dims: dd, data: x.data }];
    }
    case "Flatten": {
      const a = normAxis(getIntAttr(node, "axis", 1), x.dims.length);
      return [{
        dtype: x.dtype,
        dims: [numel(x.dims.slice(0, a)), numel(x.dims.slice(a))],
        data: x.data,
      }];
    }
    case "Unsqueeze": {
      const axes0 = ctx.opset >= 13 ? intsOf(ins[1], what) : getIntsAttr(node, "axes")!;
      const r = x.dims.length + axes0.length;
      const axes = new Set(axes0.map((a) => normAxis(a, r)));
      const dims: number[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) dims.push(axes.has(i) ? 1 : x.dims[j++]);
      return [{ dtype: x.dtype, dims, data: x.data }];
    }
    case "Squeeze": {
      const axes0 = ctx.opset >= 13
        ? (ins[1] ? intsOf(ins[1], what) : null)
        : getIntsAttr(node, "axes") ?? null;
      const r = x.dims.length;
      const axes = new Set(
        axes0 ? axes0.map((a) => normAxis(a, r)) : x.dims.flatMap((d, i) => d === 1 ? [i] : []),
      );
      return [{ dtype: x.dtype, dims: x.dims.filter((_, i) => !axes.has(i)), data: x.data }];
    }
    case "Concat": {
      const parts = ins.filter((t): t is ETensor => !!t);
      const a = normAxis(getIntAttr(node, "axis", 0), x.dims.length);
      const dims = x.dims.slice();
      dims[a] = parts.reduce((s, t) => s + t.dims[a], 0);
      if (parts.some((t) => !t.data)) return [{ dtype: x.dtype, dims, data: null }];
      const outer = numel(dims.slice(0, a));
      const out = new Float64Array(numel(dims));
      let k = 0;
      for (let o = 0; o < outer; o++) {
        for (const t of parts) {
          const len = numel(t.dims.slice(a));
          out.set(t.data!.subarray(o * len, (o + 1) * len), k);
          k += len;
        }
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case "Split": {
      const a = normAxis(getIntAttr(node, "axis", 0), x.dims.length);
      const nOut = node.output!.length;
      let sizes = ctx.opset >= 13
        ? (ins[1] ? intsOf(ins[1], what) : null)
        : getIntsAttr(node, "split") ?? null;
      if (!sizes) {
        const c = Math.ceil(x.dims[a] / nOut);
        sizes = Array.from({ length: nOut }, (_, i) => Math.min(c, x.dims[a] - i * c));
      }
      let off = 0;
      return sizes.map((s) => {
        const idx = Array.from({ length: s }, (_, i) => off + i);
        off += s;
        return sliceAxis(x, a, idx);
      });
    }
    case "Slice": {
      const r = x.dims.length;
      let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
      if (ctx.opset >= 10) {
        starts = intsOf(ins[1], what);
        ends = intsOf(ins[2], what);
        axes = ins[3] ? intsOf(ins[3], what) : undefined;
        steps = ins[4] ? intsOf(ins[4], what) : undefined;
      } else {
        starts = getIntsAttr(node, "starts")!;
        ends = getIntsAttr(node, "ends")!;
        axes = getIntsAttr(node, "axes");
      }
      axes ??= starts.map((_, i) => i);
      let y = x;
      axes.forEach((ax0, i) => {
        const ax = normAxis(ax0, r), d = x.dims[ax], st = steps?.[i] ?? 1;
        let s = starts[i], e = ends[i];
        if (s < 0) s += d;
        if (e < 0) e += d;
        if (st > 0) {
          s = Math.min(Math.max(s, 0), d);
          e = Math.min(Math.max(e, 0), d);
        } else {
          s = Math.min(Math.max(s, -1), d - 1);
          e = Math.min(Math.max(e, -1), d - 1);
        }
        const idx: number[] = [];
        for (let j = s; st > 0 ? j < e : j > e; j += st) idx.push(j);
        y = sliceAxis(y, ax, idx);
      });
      return [y];
    }
    case "Gather": {
      const r = x.dims.length, a = normAxis(getIntAttr(node, "axis", 0), r);
      const ind = ins[1]!;
      const dims = [...x.dims.slice(0, a), ...ind.dims, ...x.dims.slice(a + 1)];
      if (!x.data || !ind.data) return [{ dtype: x.dtype, dims, data: null }];
      const idx = Array.from(ind.data, (v) => (v < 0 ? v + x.dims[a] : v));
      const g = sliceAxis(x, a, idx);
      return [{ dtype: x.dtype, dims, data: g.data }];
    }
    case "GatherElements": {
      const ind = ins[1]!, r = x.dims.length, a = normAxis(getIntAttr(node, "axis", 0), r);
      if (!x.data || !ind.data) return [{ dtype: x.dtype, dims: ind.dims.slice(), data: null }];
      const xs = strides(x.dims), is = strides(ind.dims);
      const out = new Float64Array(ind.data.length);
      for (let i = 0; i < out.length; i++) {
        let k = 0, rem = i;
        for (let d = 0; d < r; d++) {
          const p = Math.floor(rem / is[d]);
          rem -= p * is[d];
          const q = d === a ? (ind.data[i] < 0 ? ind.data[i] + x.dims[a] : ind.data[i]) : p;
          k += q * xs[d];
        }
        out[i] = x.data[k];
      }
      return [{ dtype: x.dtype, dims: ind.dims.slice(), data: out }];
    }
    case "Expand": {
      const shape = intsOf(ins[1], what);
      const dims = bcastDims(x.dims, shape, what);
      if (!x.data) return [{ dtype: x.dtype, dims, data: null }];
      const m = bcastIndex(x.dims, dims);
      return [{ dtype: x.dtype, dims, data: Float64Array.from(m, (i) => x.data![i]) }];
    }
    case "Pad": {
      const pads = intsOf(ins[1], what), r = x.dims.length;
      if (getStringAttr(node, "mode", "constant") !== "constant" || ins[3]) {
        throw new EvalError(`${what}: only constant mode over all axes is supported`);
      }
      const cv = ins[2]?.data ? ins[2].data[0] : 0;
      const dims = x.dims.map((d, i) => d + pads[i] + pads[i + r]);
      if (!x.data) return [{ dtype: x.dtype, dims, data: null }];
      const out = new Float64Array(numel(dims)).fill(cv);
      const os = strides(dims), pos = new Array(r).fill(0);
      for (let i = 0; i < x.data.length; i++) {
        let k = 0, ok = true;
        for (let d = 0; d < r; d++) {
          const q = pos[d] + pads[d];
          if (q < 0 || q >= dims[d]) ok = false;
          k += q * os[d];
        }
        if (ok) out[k] = x.data[i];
        for (let d = r - 1; d >= 0; d--) {
          if (++pos[d] < x.dims[d]) break;
          pos[d] = 0;
        }
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case "Softmax":
    case "LogSoftmax": {
      if (ctx.opset < 13) {
        throw new EvalError(`${what}: opset < 13 Softmax semantics not supported`);
      }
      const log = op === "LogSoftmax";
      return [lanes(x, getIntAttr(node, "axis", -1), (v) => {
        const m = Math.max(...v);
        let s = 0;
        for (let i = 0; i < v.length; i++) s += Math.exp(v[i] - m);
        for (let i = 0; i < v.length; i++) {
          v[i] = log ? v[i] - m - Math.log(s) : Math.exp(v[i] - m) / s;
        }
      })];
    }
    case "LayerNormalization":
    case "SimplifiedLayerNormalization": {
      const r = x.dims.length, a = normAxis(getIntAttr(node, "axis", -1), r);
      const eps = getFloatAttr(node, "epsilon", 1e-5);
      if (!x.data || !ins[1]?.data || (ins[2] && !ins[2].data)) return [{ ...x, data: null }];
      const n = numel(x.dims.slice(a)), outer = numel(x.dims.slice(0, a));
      const sm = bcastIndex(ins[1].dims, x.dims.slice(a));
      const bm = ins[2] ? bcastIndex(ins[2].dims, x.dims.slice(a)) : null;
      const out = new Float64Array(x.data.length);
      for (let o = 0; o < outer; o++) {
        const v = x.data.subarray(o * n, (o + 1) * n);
        let mean = 0;
        if (op === "LayerNormalization") mean = v.reduce((p, q) => p + q, 0) / n;
        let vr = 0;
        for (const q of v) vr += (q - mean) ** 2;
        const inv = 1 / Math.sqrt(vr / n + eps);
        for (let i = 0; i < n; i++) {
          out[o * n + i] = (v[i] - mean) * inv * ins[1].data[sm[i]] +
            (bm ? ins[2]!.data![bm[i]] : 0);
        }
      }
      return [{ dtype: x.dtype, dims: x.dims.slice(), data: out }];
    }
    case "ReduceMean":
    case "ReduceSum":
    case "ReduceMax": {
      const axesFromInput = op === "ReduceSum" ? ctx.opset >= 13 : ctx.opset >= 18;
      const axes = axesFromInput
        ? (ins[1] ? intsOf(ins[1], what) : null)
        : getIntsAttr(node, "axes") ?? null;
      const keep = getIntAttr(node, "keepdims", 1) === 1;
      if ((!axes || !axes.length) && getIntAttr(node, "noop_with_empty_axes", 0)) return [x];
      const kind = op === "ReduceSum" ? "sum" : op === "ReduceMean" ? "mean" : "max";
      return [reduce(x, axes, keep, kind)];
    }
    case "Trilu": {
      const upper = getIntAttr(node, "upper", 1), k = ins[1] ? intsOf(ins[1], what)[0] : 0;
      if (!x.data) return [{ ...x, data: null }];
      const [m, n] = x.dims.slice(-2);
      const out = Float64Array.from(x.data);
      for (let i = 0; i < out.length; i++) {
        const col = i % n, row = Math.floor(i / n) % m;
        const keep = upper ? col - row >= k : col - row <= k;
        if (!keep) out[i] = 0;
      }
      return [{ dtype: x.dtype, dims: x.dims.slice(), data: out }];
    }
    // Ops of Hugging Face mask and position subgraphs (transformers' SDPA / cache_position code).
    case "IsNaN":
      return [elementwise([x], DataType.BOOL, (v) => Number(Number.isNaN(v)), what)];
    case "IsInf": {
      const pos = getIntAttr(node, "detect_positive", 1),
        neg = getIntAttr(node, "detect_negative", 1);
      const f = (v: number) => Number((pos && v === Infinity) || (neg && v === -Infinity));
      return [elementwise([x], DataType.BOOL, f, what)];
    }
    case "Mod": {
      const fmod = getIntAttr(node, "fmod", 0);
      const f = (a: number, b: number) => (fmod ? a % b : ((a % b) + b) % b);
      return [elementwise([x, ins[1]!], x.dtype, f, what)];
    }
    case "CumSum": {
      const axis = intsOf(ins[1], what)[0];
      const excl = getIntAttr(node, "exclusive", 0), rev = getIntAttr(node, "reverse", 0);
      return [lanes(x, axis, (v) => {
        const n = v.length, src = Float64Array.from(v);
        let acc = 0;
        for (let j = 0; j < n; j++) {
          const i = rev ? n - 1 - j : j;
          if (excl) {
            v[i] = acc;
            acc += src[i];
          } else {
            acc += src[i];
            v[i] = acc;
          }
        }
      })];
    }
    case "Tile": {
      const rep = intsOf(ins[1], what);
      const dims = x.dims.map((d, i) => d * rep[i]);
      if (!x.data) return [{ dtype: x.dtype, dims, data: null }];
      const xs = strides(x.dims), r = dims.length, pos = new Array(r).fill(0);
      const out = new Float64Array(numel(dims));
      for (let o = 0; o < out.length; o++) {
        let k = 0;
        for (let d = 0; d < r; d++) k += (pos[d] % x.dims[d]) * xs[d];
        out[o] = x.data[k];
        for (let d = r - 1; d >= 0; d--) {
          if (++pos[d] < dims[d]) break;
          pos[d] = 0;
        }
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case "ScatterND": {
      const ind = ins[1]!, upd = ins[2]!;
      if (getStringAttr(node, "reduction", "none") !== "none") {
        throw new EvalError(`${what}: only reduction "none" is supported`);
      }
      if (!x.data || !ind.data || !upd.data) return [{ ...x, dims: x.dims.slice(), data: null }];
      const k = ind.dims.at(-1)!, xs = strides(x.dims);
      const slice = numel(x.dims.slice(k)), n = numel(ind.dims.slice(0, -1));
      const out = Float64Array.from(x.data);
      for (let i = 0; i < n; i++) {
        let base = 0;
        for (let d = 0; d < k; d++) {
          const q = ind.data[i * k + d];
          base += (q < 0 ? q + x.dims[d] : q) * xs[d];
        }
        for (let j = 0; j < slice; j++) out[base + j] = upd.data[i * slice + j];
      }
      return [{ dtype: x.dtype, dims: x.dims.slice(), data: out }];
    }
    default:
      throw new UnsupportedOpError(`${what}: op is not supported by the evaluator`);
  }
}

export interface EvalOptions {
  /** Keep initializer/Constant values up to this many elements (shape mode); Infinity = all. */
  maxConstElems?: number;
  /** Compute values only when all inputs have values (true = shape mode for big floats). */
  shapeMode?: boolean;
}

/**
 * Runs the graph. In shape mode, graph inputs may be given as dims-only tensors, and big
 * initializers keep only their dims; values are computed wherever all inputs have values.
 */
export function evalGraph(
  model: ModelProto,
  feeds: Record<string, ETensor>,
  opts: EvalOptions = {},
): Map<string, ETensor> {
  const env = new Map<string, ETensor>();
  const maxConst = opts.maxConstElems ?? Infinity;
  const ctx = { opset: opsetVersion(model) };
  const g = model.graph!;
  for (const t of g.initializer ?? []) {
    const n = numel((t.dims ?? []).map(num));
    env.set(t.name!, tensorFromProto(t, n <= maxConst));
  }
  for (const [k, v] of Object.entries(feeds)) env.set(k, v);
  for (const inp of g.input ?? []) {
    if (!env.has(inp.name!)) throw new EvalError(`evalGraph: no value for input "${inp.name}"`);
  }
  for (const node of g.node ?? []) {
    const ins = (node.input ?? []).map((n) => {
      if (!n) return undefined;
      const t = env.get(n);
      if (!t) {
        throw new EvalError(`evalGraph: node "${node.name}" reads "${n}" before it is defined`);
      }
      return t;
    });
    let outs: ETensor[];
    try {
      if (opts.shapeMode && ins.some((t) => t?.dtype === UNKNOWN)) {
        outs = (node.output ?? []).map(() => ({ dtype: UNKNOWN, dims: [], data: null }));
      } else outs = evalNode(node, ins, ctx);
    } catch (e) {
      if (opts.shapeMode && e instanceof UnsupportedOpError) {
        // Ops the evaluator lacks leave their outputs unknown; the builder reports them only if
        // they sit on the differentiable path.
        outs = (node.output ?? []).map(() => ({ dtype: UNKNOWN, dims: [], data: null }));
      } else if (e instanceof EvalError) throw e;
      else throw new EvalError(`${node.opType} node "${node.name}": ${(e as Error).message}`);
    }
    (node.output ?? []).forEach((o, i) => {
      if (!o) return;
      let t = outs[i];
      if (!t) throw new EvalError(`${node.opType} node "${node.name}": no output ${i}`);
      if (opts.shapeMode && node.opType === "Constant" && t.data && t.data.length > maxConst) {
        t = { ...t, data: null };
      }
      env.set(o, t);
    });
  }
  return env;
}
