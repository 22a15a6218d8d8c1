// Shape inference over the ops of GPT-2 / GPT-NeoX / Llama / Gemma exports. Besides shapes it
// propagates the values of small integer tensors (Shape → Gather → Concat → Reshape chains),
// symbolically where they come from symbolic dims ("batch", "seq"), so that Reshape, Expand, Slice
// and Range outputs keep their dims. A dim that cannot be worked out is an unknown: a string
// starting with "?" (unique per origin), never a guess. Tensors whose rank is unknown are absent.
import { getAttr, getIntAttr, getIntsAttr, opsetVersion } from "./graph.ts";
import {
  DataType,
  declaredDims,
  INT_TYPES,
  type ModelProto,
  type NodeProto,
  onnx,
  tensorDims,
  type TensorProto,
  tensorToArray,
  type ValueInfoProto,
} from "./onnx.ts";

export type Dim = number | string;
export interface ShapeInfo {
  elemType: number;
  dims: Dim[];
}

interface Info {
  elemType: number;
  dims?: Dim[];
  /** Elements of a small (rank ≤ 1) numeric tensor; symbolic dims as strings. */
  value?: Dim[];
}

const MAX_VALUE = 64;
const BIG = 2 ** 31 - 1; // Slice ends at or beyond this mean "to the end".

export function isUnknownDim(d: Dim): boolean {
  return typeof d === "string" && d.startsWith("?");
}

/**
 * A symbolic dim as a linear expression: constant + Σ coef·symbol. Dim strings such as
 * "past_sequence_length + sequence_length" (as exporters name them) are parsed back into one, so
 * that `(past + seq) − seq` is `past` and `past + seq` with past = 0 is `seq`.
 */
export interface Lin {
  c: number;
  t: Map<string, number>;
}

const ATOM = /^[A-Za-z_?][A-Za-z0-9_.?]*$/;

export function parseLin(d: Dim): Lin | undefined {
  if (typeof d === "number") return { c: d, t: new Map() };
  if (isUnknownDim(d)) return { c: 0, t: new Map([[d, 1]]) };
  const parts = d.trim().split(/\s*([+-])\s*/);
  const out: Lin = { c: 0, t: new Map() };
  let sign = 1;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (i % 2 === 1) {
      sign = p === "-" ? -1 : 1;
      continue;
    }
    if (p === "" && i === 0) continue;
    const m = /^(?:(\d+)\s*\*\s*)?(.+)$/.exec(p);
    if (/^\d+$/.test(p)) out.c += sign * Number(p);
    else if (m && ATOM.test(m[2])) {
      const k = sign * (m[1] ? Number(m[1]) : 1);
      out.t.set(m[2], (out.t.get(m[2]) ?? 0) + k);
    } else return { c: 0, t: new Map([[d, 1]]) }; // an opaque name is one symbol
  }
  return out;
}

/** a + k·b */
export function linAdd(a: Lin, b: Lin, k = 1): Lin {
  const t = new Map(a.t);
  for (const [s, v] of b.t) t.set(s, (t.get(s) ?? 0) + k * v);
  for (const [s, v] of t) if (v === 0) t.delete(s);
  return { c: a.c + k * b.c, t };
}

/** The canonical Dim of an expression; one holding an unknown (and more) is a fresh unknown. */
export function formatLin(l: Lin, fresh: () => string): Dim {
  const terms = [...l.t].filter(([, v]) => v !== 0).sort(([a], [b]) => (a < b ? -1 : 1));
  if (!terms.length) return l.c;
  if (terms.length === 1 && terms[0][1] === 1 && l.c === 0) return terms[0][0];
  if (terms.some(([s]) => isUnknownDim(s))) return fresh();
  let out = "";
  for (const [s, v] of terms) {
    const a = Math.abs(v);
    const term = a === 1 ? s : `${a}*${s}`;
    out += out ? (v < 0 ? ` - ${term}` : ` + ${term}`) : v < 0 ? `-${term}` : term;
  }
  if (l.c) out += l.c < 0 ? ` - ${-l.c}` : ` + ${l.c}`;
  return out;
}

/** a + k·b on Dims, symbolic sums kept. */
function dimAdd(a: Dim, b: Dim, k: number, fresh: () => string): Dim {
  if (typeof a === "number" && typeof b === "number") return a + k * b;
  const x = parseLin(a), y = parseLin(b);
  if (!x || !y) return fresh();
  return formatLin(linAdd(x, y, k), fresh);
}

function numericValue(t: TensorProto): Dim[] | undefined {
  const dims = tensorDims(t);
  const n = dims.reduce((a, b) => a * b, 1);
  if (dims.length > 1 || n > MAX_VALUE) return undefined;
  const dt = t.dataType ?? 0;
  if (dt === DataType.STRING || dt === DataType.FLOAT16 || dt === DataType.BFLOAT16) {
    return undefined;
  }
  try {
    return Array.from(tensorToArray(t) as ArrayLike<number | bigint>, (x) => Number(x));
  } catch {
    return undefined;
  }
}

function fromValueInfo(v: ValueInfoProto, fresh: () => string): Info | undefined {
  const tt = v.type?.tensorType;
  if (!tt) return undefined;
  const info: Info = { elemType: tt.elemType ?? 0 };
  info.dims = declaredDims(v)?.map((d) => d ?? fresh());
  return info;
}

/** A ValueInfoProto for a tensor; unknown dims are written without value or name. */
export function toValueInfo(name: string, s: ShapeInfo): ValueInfoProto {
  const dim = s.dims.map((d) =>
    typeof d === "number"
      ? onnx.TensorShapeProto.Dimension.create({ dimValue: d })
      : isUnknownDim(d)
      ? onnx.TensorShapeProto.Dimension.create({})
      : onnx.TensorShapeProto.Dimension.create({ dimParam: d })
  );
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: s.elemType,
        shape: onnx.TensorShapeProto.create({ dim }),
      }),
    }),
  });
}

/**
 * Shapes of every tensor whose rank can be inferred. `inputDims` overrides graph input dims
 * (e.g. `{input_ids: [4, 64]}` to get concrete shapes).
 */
export function inferShapes(
  model: ModelProto,
  inputDims: Record<string, Dim[]> = {},
): Map<string, ShapeInfo> {
  const g = model.graph;
  if (!g) throw new Error("inferShapes: the model has no graph");
  const opset = opsetVersion(model);
  let counter = 0;
  const fresh = () => `?${++counter}`;
  const info = new Map<string, Info>();
  for (const t of g.initializer ?? []) {
    info.set(t.name ?? "", {
      elemType: t.dataType ?? 0,
      dims: tensorDims(t),
      value: numericValue(t),
    });
  }
  for (const v of g.input ?? []) {
    const name = v.name ?? "";
    if (info.has(name)) continue;
    const i = fromValueInfo(v, fresh);
    if (!i) continue;
    if (inputDims[name]) i.dims = [...inputDims[name]];
    info.set(name, i);
  }
  for (const node of g.node ?? []) {
    let outs: (Info | undefined)[];
    try {
      outs = inferNode(
        node,
        (k) => {
          const name = node.input?.[k];
          return name ? info.get(name) : undefined;
        },
        opset,
        fresh,
      );
    } catch {
      outs = [];
    }
    (node.output ?? []).forEach((o, k) => {
      const i = outs[k];
      if (o && i) info.set(o, i);
    });
  }
  // Declared types fill in what inference could not reach (ops it does not know).
  for (const v of [...(g.valueInfo ?? []), ...(g.output ?? [])]) {
    const name = v.name ?? "";
    const have = info.get(name);
    if (have?.dims) continue;
    const d = fromValueInfo(v, fresh);
    if (d?.dims) info.set(name, { ...d, elemType: d.elemType || have?.elemType || 0 });
  }
  const out = new Map<string, ShapeInfo>();
  for (const [k, v] of info) if (v.dims) out.set(k, { elemType: v.elemType, dims: v.dims });
  return out;
}

function prod(ds: Dim[]): { coef: number; syms: string[] } | undefined {
  let coef = 1;
  const syms: string[] = [];
  for (const d of ds) {
    if (typeof d === "number") coef *= d;
    else if (isUnknownDim(d)) return undefined;
    else syms.push(d);
  }
  return { coef, syms: syms.sort() };
}

function broadcast(shapes: (Dim[] | undefined)[], fresh: () => string): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const r = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    let d: Dim | undefined = undefined;
    for (const s of shapes) {
      const x = s![s!.length - r + i];
      if (x === undefined || x === 1) continue;
      if (d === undefined || d === x) d = x;
      else if (typeof d === "number" && typeof x === "number") return undefined; // invalid model
      else if (typeof x === "number") d = x; // a symbol broadcast with n must be n (or 1)
      else if (typeof d === "number") continue;
      else d = fresh();
    }
    out.push(d ?? 1);
  }
  return out;
}

function normAxis(a: number, r: number): number {
  return a < 0 ? a + r : a;
}

const UNARY = new Set([
  "Identity",
  "Neg",
  "Abs",
  "Sqrt",
  "Reciprocal",
  "Exp",
  "Log",
  "Erf",
  "Tanh",
  "Sigmoid",
  "Relu",
  "Softplus",
  "Gelu",
  "FastGelu",
  "BiasGelu",
  "Sin",
  "Cos",
  "Floor",
  "Ceil",
  "Round",
  "Sign",
  "HardSigmoid",
  "LeakyRelu",
  "Elu",
  "Selu",
  "Softsign",
  "QuickGelu",
  "Softmax",
  "LogSoftmax",
  "Hardmax",
  "Trilu",
  "CumSum",
  "Clip",
  "IsNaN",
  "IsInf",
]);
const COMPARISONS = [
  "Equal",
  "Less",
  "Greater",
  "LessOrEqual",
  "GreaterOrEqual",
  "And",
  "Or",
  "Xor",
];
const BOOL_OUT = new Set([...COMPARISONS, "Not", "IsNaN", "IsInf"]);
const BINARY = new Set([
  ...["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod"],
  ...COMPARISONS,
  ...["PRelu", "BitShift"],
]);

function unaryValue(op: string, v: Dim[] | undefined, fresh: () => string): Dim[] | undefined {
  if (!v) return undefined;
  if (op === "Identity") return v;
  const f: Record<string, (x: number) => number> = {
    Neg: (x) => -x,
    Abs: Math.abs,
    Sqrt: Math.sqrt,
    Reciprocal: (x) => 1 / x,
    Floor: Math.floor,
    Ceil: Math.ceil,
    Not: (x) => (x ? 0 : 1),
  };
  const fn = f[op];
  if (!fn) return undefined;
  return v.map((x) => (typeof x === "number" ? fn(x) : fresh()));
}

function binaryValue(
  op: string,
  a: Dim[] | undefined,
  b: Dim[] | undefined,
  isInt: boolean,
  fresh: () => string,
): Dim[] | undefined {
  if (!a || !b) return undefined;
  const n = Math.max(a.length, b.length);
  if ((a.length !== n && a.length !== 1) || (b.length !== n && b.length !== 1)) return undefined;
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length === 1 ? 0 : i], y = b[b.length === 1 ? 0 : i];
    if (typeof x === "number" && typeof y === "number") {
      const r: Record<string, () => number> = {
        Add: () => x + y,
        Sub: () => x - y,
        Mul: () => x * y,
        Div: () => (isInt ? Math.trunc(x / y) : x / y),
        Pow: () => x ** y,
        Max: () => Math.max(x, y),
        Min: () => Math.min(x, y),
        Mod: () => x % y,
        Equal: () => Number(x === y),
        Less: () => Number(x < y),
        Greater: () => Number(x > y),
        LessOrEqual: () => Number(x <= y),
        GreaterOrEqual: () => Number(x >= y),
        And: () => Number(!!x && !!y),
        Or: () => Number(!!x || !!y),
      };
      out.push(r[op] ? r[op]() : fresh());
    } else if (op === "Add" || op === "Sub") out.push(dimAdd(x, y, op === "Add" ? 1 : -1, fresh));
    else if (op === "Mul" && (typeof x === "number" || typeof y === "number")) {
      const [k, v] = typeof x === "number" ? [x, y] : [y as number, x];
      const l = parseLin(v);
      out.push(
        k === 0
          ? 0
          : l
          ? formatLin({ c: l.c * k, t: new Map([...l.t].map(([s, c]) => [s, c * k])) }, fresh)
          : fresh(),
      );
    } else if ((op === "Mul" || op === "Div") && y === 1) out.push(x);
    else if (op === "Mul" && x === 1) out.push(y);
    else if (op === "Equal" && x === y) out.push(1);
    else if (["Max", "Min"].includes(op) && x === y) out.push(x);
    else out.push(fresh());
  }
  return out;
}

function castValue(v: Dim[] | undefined, to: number): Dim[] | undefined {
  if (!v) return undefined;
  if (to === DataType.BOOL) return v.map((x) => (typeof x === "number" ? Number(x !== 0) : x));
  if (INT_TYPES.has(to)) return v.map((x) => (typeof x === "number" ? Math.trunc(x) : x));
  if (to === DataType.FLOAT || to === DataType.DOUBLE) return v;
  return undefined;
}

function axesOf(
  node: NodeProto,
  get: (k: number) => Info | undefined,
  inputIndex: number,
  fromInput: boolean,
): number[] | null | undefined {
  // undefined: no axes given; null: given but unknown.
  if (fromInput) {
    if (!node.input?.[inputIndex]) return undefined;
    const v = get(inputIndex)?.value;
    if (!v || v.some((x) => typeof x !== "number")) return null;
    return v as number[];
  }
  return getIntsAttr(node, "axes");
}

function sliceDim(d: Dim, s: Dim, e: Dim, k: number, fresh: () => string): Dim {
  if (typeof d === "number" && typeof s === "number" && typeof e === "number") {
    const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x, lo), hi);
    if (k > 0) {
      const st = clamp(s < 0 ? s + d : s, 0, d), en = clamp(e < 0 ? e + d : e, 0, d);
      return Math.max(0, Math.ceil((en - st) / k));
    }
    const st = clamp(s < 0 ? s + d : s, -1, d - 1), en = clamp(e < 0 ? e + d : e, -1, d - 1);
    return Math.max(0, Math.ceil((st - en) / -k));
  }
  // Symbolic bounds are lengths (≥ 0, no wrap-around) and exports slice only within what a
  // tensor holds, so a slice [s, e) of a cache or of the causal-mask buffer (bias[k−q : k]) has
  // length e − s.
  if (k === 1) {
    const ls = parseLin(s), le = parseLin(e);
    if (typeof e === "number" && e >= BIG) {
      if (typeof s !== "number" || s >= 0) return dimAdd(d, s, -1, fresh);
    } else if (typeof e === "number" && e < 0 && s === 0) {
      return dimAdd(d, e, 1, fresh);
    } else if (
      (typeof s !== "number" || typeof e !== "number") && ls && le &&
      (typeof s !== "number" || s >= 0) && (typeof e !== "number" || e >= 0)
    ) {
      return formatLin(linAdd(le, ls, -1), fresh);
    }
  }
  return fresh();
}

function reshapeDims(
  input: Dim[] | undefined,
  shape: Dim[],
  allowzero: boolean,
  fresh: () => string,
): Dim[] {
  const out = shape.map((s, i) => {
    if (s === 0 && !allowzero) return input?.[i] ?? fresh();
    return s;
  });
  const neg = out.findIndex((x) => x === -1);
  if (neg < 0) return out;
  const total = input ? prod(input) : undefined;
  const known = prod(out.filter((_, i) => i !== neg));
  let d: Dim = fresh();
  if (total && known && known.coef !== 0 && total.coef % known.coef === 0) {
    const left = [...total.syms];
    let ok = true;
    for (const s of known.syms) {
      const j = left.indexOf(s);
      if (j < 0) ok = false;
      else left.splice(j, 1);
    }
    const c = total.coef / known.coef;
    if (ok && left.length === 0) d = c;
    else if (ok && left.length === 1 && c === 1) d = left[0];
  }
  out[neg] = d;
  return out;
}

function inferNode(
  node: NodeProto,
  get: (k: number) => Info | undefined,
  opset: number,
  fresh: () => string,
): (Info | undefined)[] {
  const op = node.opType ?? "";
  const x = get(0);
  const same = (elemType = x?.elemType ?? 0): Info | undefined =>
    x?.dims ? { elemType, dims: [...x.dims] } : { elemType };
  if (op === "Constant") {
    const t = getAttr(node, "value");
    if (t && typeof t === "object" && !Array.isArray(t)) {
      const tp = t as TensorProto;
      return [{ elemType: tp.dataType ?? 0, dims: tensorDims(tp), value: numericValue(tp) }];
    }
    const vi = getAttr(node, "value_int"), vf = getAttr(node, "value_float");
    if (typeof vi === "number") return [{ elemType: DataType.INT64, dims: [], value: [vi] }];
    if (typeof vf === "number") return [{ elemType: DataType.FLOAT, dims: [], value: [vf] }];
    const vis = getAttr(node, "value_ints"), vfs = getAttr(node, "value_floats");
    if (Array.isArray(vis)) {
      return [{ elemType: DataType.INT64, dims: [vis.length], value: vis as number[] }];
    }
    if (Array.isArray(vfs)) {
      return [{ elemType: DataType.FLOAT, dims: [vfs.length], value: vfs as number[] }];
    }
    return [];
  }
  if (UNARY.has(op)) {
    const o = same(BOOL_OUT.has(op) ? DataType.BOOL : x?.elemType);
    if (o) o.value = unaryValue(op, x?.value, fresh);
    return [o];
  }
  if (op === "Not") return [{ ...same(DataType.BOOL)!, value: unaryValue(op, x?.value, fresh) }];
  if (BINARY.has(op)) {
    const y = get(1);
    const elemType = BOOL_OUT.has(op) ? DataType.BOOL : x?.elemType ?? y?.elemType ?? 0;
    const dims = broadcast([x?.dims, y?.dims], fresh);
    const value = dims && dims.length <= 1
      ? binaryValue(op, x?.value, y?.value, INT_TYPES.has(x?.elemType ?? 0), fresh)
      : undefined;
    return [{ elemType, dims, value }];
  }
  switch (op) {
    case "Cast": {
      const to = getIntAttr(node, "to", 0);
      return [{ elemType: to, dims: x?.dims, value: castValue(x?.value, to) }];
    }
    case "CastLike":
      return [{ elemType: get(1)?.elemType ?? 0, dims: x?.dims, value: x?.value }];
    case "Dropout":
      return [same(), x?.dims ? { elemType: DataType.BOOL, dims: x.dims } : undefined];
    case "Shape": {
      if (!x?.dims) return [{ elemType: DataType.INT64 }];
      const r = x.dims.length;
      const st = Math.min(Math.max(normAxis(getIntAttr(node, "start", 0), r), 0), r);
      const en = Math.min(Math.max(normAxis(getIntAttr(node, "end", r), r), 0), r);
      const value = x.dims.slice(st, en);
      return [{ elemType: DataType.INT64, dims: [value.length], value }];
    }
    case "Size": {
      const p = x?.dims ? prod(x.dims) : undefined;
      const v = p && p.syms.length === 0
        ? p.coef
        : p?.syms.length === 1 && p.coef === 1
        ? p.syms[0]
        : fresh();
      return [{ elemType: DataType.INT64, dims: [], value: [v] }];
    }
    case "ConstantOfShape": {
      const t = getAttr(node, "value") as TensorProto | undefined;
      const elemType = t?.dataType ?? DataType.FLOAT;
      const dims = x?.value;
      if (!dims) return [{ elemType }];
      const fill = t ? numericValue(t)?.[0] : 0;
      const n = dims.reduce<number | undefined>(
        (a, d) => (a === undefined || typeof d !== "number" ? undefined : a * d),
        1,
      );
      const value = n !== undefined && n <= MAX_VALUE && dims.length <= 1 && fill !== undefined
        ? new Array<Dim>(n).fill(fill)
        : undefined;
      return [{ elemType, dims: [...dims], value }];
    }
    case "Unsqueeze":
    case "Squeeze": {
      const axes = axesOf(node, get, 1, opset >= 13);
      if (!x?.dims || axes === null) return [{ elemType: x?.elemType ?? 0 }];
      let dims: Dim[];
      if (op === "Unsqueeze") {
        if (!axes) return [{ elemType: x.elemType }];
        const r = x.dims.length + axes.length;
        const ax = new Set(axes.map((a) => normAxis(a, r)));
        dims = [];
        let j = 0;
        for (let i = 0; i < r; i++) dims.push(ax.has(i) ? 1 : x.dims[j++]);
      } else if (axes) {
        const ax = new Set(axes.map((a) => normAxis(a, x.dims!.length)));
        dims = x.dims.filter((_, i) => !ax.has(i));
      } else {
        if (x.dims.some((d) => typeof d !== "number")) return [{ elemType: x.elemType }];
        dims = x.dims.filter((d) => d !== 1);
      }
      return [{ elemType: x.elemType, dims, value: dims.length <= 1 ? x.value : undefined }];
    }
    case "Concat": {
      const ins = (node.input ?? []).map((_, k) => get(k));
      const elemType = ins.find((i) => i)?.elemType ?? 0;
      if (ins.some((i) => !i?.dims)) return [{ elemType }];
      const r = ins[0]!.dims!.length;
      const axis = normAxis(getIntAttr(node, "axis", 0), r);
      const dims = [...ins[0]!.dims!];
      const parts = ins.map((i) => i!.dims![axis]);
      if (parts.every((p) => typeof p === "number")) {
        dims[axis] = (parts as number[]).reduce((a, b) => a + b, 0);
      } else dims[axis] = parts.reduce((a, b) => dimAdd(a, b, 1, fresh), 0 as Dim);
      for (let d = 0; d < r; d++) {
        if (d === axis) continue;
        const b = broadcast(ins.map((i) => [i!.dims![d]]), fresh);
        if (b) dims[d] = b[0];
      }
      const value = r === 1 && ins.every((i) => i!.value)
        ? ins.flatMap((i) => i!.value!)
        : undefined;
      return [{ elemType, dims, value }];
    }
    case "Gather": {
      const idx = get(1);
      if (!x?.dims || !idx?.dims) return [{ elemType: x?.elemType ?? 0 }];
      const r = x.dims.length;
      const axis = normAxis(getIntAttr(node, "axis", 0), r);
      const dims = [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)];
      let value: Dim[] | undefined;
      if (r === 1 && x.value && idx.value && idx.value.every((i) => typeof i === "number")) {
        value = (idx.value as number[]).map((i) => x.value![i < 0 ? i + x.value!.length : i]);
        if (value.some((v) => v === undefined)) value = undefined;
      }
      return [{ elemType: x.elemType, dims, value }];
    }
    case "GatherElements":
      return [{ elemType: x?.elemType ?? 0, dims: get(1)?.dims }];
    case "ScatterND":
    case "ScatterElements":
    case "Scatter":
      return [same()];
    case "Slice": {
      if (!x?.dims) return [{ elemType: x?.elemType ?? 0 }];
      const r = x.dims.length;
      let starts: Dim[] | undefined, ends: Dim[] | undefined;
      let axes: Dim[] | undefined, steps: Dim[] | undefined;
      if (opset >= 10) {
        starts = get(1)?.value;
        ends = get(2)?.value;
        axes = node.input?.[3] ? get(3)?.value : starts?.map((_, i) => i);
        steps = node.input?.[4] ? get(4)?.value : starts?.map(() => 1);
      } else {
        starts = getIntsAttr(node, "starts");
        ends = getIntsAttr(node, "ends");
        axes = getIntsAttr(node, "axes") ?? starts?.map((_, i) => i);
        steps = starts?.map(() => 1);
      }
      if (
        !starts || !ends || !axes || !steps ||
        axes.some((a) => typeof a !== "number") || steps.some((s) => typeof s !== "number")
      ) {
        // The rank is still known: each sliced dim is unknown.
        if (axes && axes.every((a) => typeof a === "number")) {
          const dims = [...x.dims];
          for (const a of axes as number[]) dims[normAxis(a, r)] = fresh();
          return [{ elemType: x.elemType, dims }];
        }
        return [{ elemType: x.elemType, dims: x.dims.map(() => fresh()) }];
      }
      const dims = [...x.dims];
      axes.forEach((a, i) => {
        const ax = normAxis(a as number, r);
        dims[ax] = sliceDim(dims[ax], starts![i], ends![i], steps![i] as number, fresh);
      });
      let value: Dim[] | undefined;
      if (r === 1 && x.value && typeof dims[0] === "number") {
        const s = starts[0], e = ends[0], k = steps[0] as number;
        if (typeof s === "number" && typeof e === "number" && k === 1) {
          const n = x.value.length;
          const st = Math.min(Math.max(s < 0 ? s + n : s, 0), n);
          const en = Math.min(Math.max(e < 0 ? e + n : e, 0), n);
          value = x.value.slice(st, Math.max(st, en));
        }
      }
      return [{ elemType: x.elemType, dims, value }];
    }
    case "Reshape": {
      const shape = get(1)?.value;
      const elemType = x?.elemType ?? 0;
      if (!shape) {
        const sd = get(1)?.dims;
        return [
          sd && typeof sd[0] === "number"
            ? { elemType, dims: Array.from({ length: sd[0] }, fresh) }
            : { elemType },
        ];
      }
      const dims = reshapeDims(x?.dims, shape, getIntAttr(node, "allowzero", 0) === 1, fresh);
      return [{ elemType, dims, value: dims.length <= 1 ? x?.value : undefined }];
    }
    case "Flatten": {
      if (!x?.dims) return [{ elemType: x?.elemType ?? 0 }];
      const axis = normAxis(getIntAttr(node, "axis", 1), x.dims.length);
      const p = (ds: Dim[]) => {
        const q = prod(ds);
        if (!q) return fresh();
        if (q.syms.length === 0) return q.coef;
        return q.syms.length === 1 && q.coef === 1 ? q.syms[0] : fresh();
      };
      return [{ elemType: x.elemType, dims: [p(x.dims.slice(0, axis)), p(x.dims.slice(axis))] }];
    }
    case "Expand": {
      const shape = get(1)?.value;
      if (!shape) return [{ elemType: x?.elemType ?? 0 }];
      return [{ elemType: x?.elemType ?? 0, dims: broadcast([x?.dims, shape], fresh) }];
    }
    case "Tile": {
      const rep = get(1)?.value;
      if (!x?.dims || !rep) return [{ elemType: x?.elemType ?? 0 }];
      const dims = x.dims.map((d, i) =>
        rep[i] === 1
          ? d
          : typeof d === "number" && typeof rep[i] === "number"
          ? d * (rep[i] as number)
          : fresh()
      );
      return [{ elemType: x.elemType, dims }];
    }
    case "Transpose": {
      if (!x?.dims) return [{ elemType: x?.elemType ?? 0 }];
      const perm = getIntsAttr(node, "perm") ?? x.dims.map((_, i) => x.dims!.length - 1 - i);
      return [{ elemType: x.elemType, dims: perm.map((p) => x.dims![p]) }];
    }
    case "MatMul":
    case "MatMulInteger": {
      const y = get(1);
      const elemType = op === "MatMul" ? x?.elemType ?? 0 : DataType.INT32;
      if (!x?.dims || !y?.dims) return [{ elemType }];
      const a = x.dims.length === 1 ? [1, x.dims[0]] : x.dims;
      const b = y.dims.length === 1 ? [y.dims[0], 1] : y.dims;
      const batch = broadcast([a.slice(0, -2), b.slice(0, -2)], fresh);
      if (!batch) return [{ elemType }];
      const dims = [...batch];
      if (x.dims.length > 1) dims.push(a[a.length - 2]);
      if (y.dims.length > 1) dims.push(b[b.length - 1]);
      return [{ elemType, dims }];
    }
    case "Gemm": {
      const y = get(1);
      if (!x?.dims || !y?.dims) return [{ elemType: x?.elemType ?? 0 }];
      const m = getIntAttr(node, "transA", 0) ? x.dims[1] : x.dims[0];
      const n = getIntAttr(node, "transB", 0) ? y.dims[0] : y.dims[1];
      return [{ elemType: x.elemType, dims: [m, n] }];
    }
    case "LayerNormalization":
    case "SimplifiedLayerNormalization":
    case "RMSNormalization": {
      if (!x?.dims) return [{ elemType: x?.elemType ?? 0 }];
      const axis = normAxis(getIntAttr(node, "axis", -1), x.dims.length);
      const stat = x.dims.map((d, i) => (i < axis ? d : 1));
      const st = getIntAttr(node, "stash_type", 1);
      return [same(), { elemType: st, dims: stat }, { elemType: st, dims: [...stat] }];
    }
    case "ReduceMean":
    case "ReduceSum":
    case "ReduceMax":
    case "ReduceMin":
    case "ReduceProd":
    case "ReduceL1":
    case "ReduceL2":
    case "ReduceSumSquare":
    case "ReduceLogSum":
    case "ReduceLogSumExp": {
      const fromInput = op === "ReduceSum" ? opset >= 13 : opset >= 18;
      const axes = axesOf(node, get, 1, fromInput);
      if (!x?.dims || axes === null) return [{ elemType: x?.elemType ?? 0 }];
      const keep = getIntAttr(node, "keepdims", 1) === 1;
      const r = x.dims.length;
      const noop = getIntAttr(node, "noop_with_empty_axes", 0) === 1;
      if ((!axes || axes.length === 0) && noop) return [same()];
      const ax = new Set(
        (axes && axes.length ? axes : x.dims.map((_, i) => i)).map((a) => normAxis(a, r)),
      );
      const dims: Dim[] = [];
      x.dims.forEach((d, i) => {
        if (!ax.has(i)) dims.push(d);
        else if (keep) dims.push(1);
      });
      return [{ elemType: x.elemType, dims }];
    }
    case "ArgMax":
    case "ArgMin": {
      if (!x?.dims) return [{ elemType: DataType.INT64 }];
      const axis = normAxis(getIntAttr(node, "axis", 0), x.dims.length);
      const keep = getIntAttr(node, "keepdims", 1) === 1;
      const dims = x.dims.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
      return [{ elemType: DataType.INT64, dims }];
    }
    case "Where": {
      const y = get(1), z = get(2);
      const dims = broadcast([x?.dims, y?.dims, z?.dims], fresh);
      let value: Dim[] | undefined;
      if (dims && dims.length <= 1 && x?.value && y?.value && z?.value) {
        const n = Math.max(x.value.length, y.value.length, z.value.length);
        const at = (v: Dim[], i: number) => v[v.length === 1 ? 0 : i];
        value = [];
        for (let i = 0; i < n; i++) {
          const c = at(x.value, i);
          value.push(typeof c === "number" ? (c ? at(y.value, i) : at(z.value, i)) : fresh());
        }
      }
      return [{ elemType: y?.elemType ?? z?.elemType ?? 0, dims, value }];
    }
    case "Split": {
      const outs = node.output ?? [];
      if (!x?.dims) return outs.map(() => ({ elemType: x?.elemType ?? 0 }));
      const r = x.dims.length;
      const axis = normAxis(getIntAttr(node, "axis", 0), r);
      let split: Dim[] | undefined = opset >= 13
        ? (node.input?.[1] ? get(1)?.value : undefined)
        : getIntsAttr(node, "split");
      const d = x.dims[axis];
      if (!split) {
        const n = outs.length;
        if (typeof d === "number") {
          const chunk = Math.ceil(d / n);
          split = outs.map((_, i) => Math.max(0, Math.min(chunk, d - chunk * i)));
        } else split = outs.map(() => fresh());
      }
      return outs.map((_, i) => {
        const dims = [...x.dims!];
        dims[axis] = split![i] ?? fresh();
        return { elemType: x.elemType, dims };
      });
    }
    case "Range": {
      const s = x?.value?.[0], l = get(1)?.value?.[0], dlt = get(2)?.value?.[0];
      const elemType = x?.elemType ?? 0;
      let n: Dim = fresh();
      let value: Dim[] | undefined;
      if (typeof s === "number" && typeof l === "number" && typeof dlt === "number") {
        n = Math.max(Math.ceil((l - s) / dlt), 0);
        if (n <= MAX_VALUE) value = Array.from({ length: n }, (_, i) => s + i * dlt);
      } else if (dlt === 1 && s !== undefined && l !== undefined) n = dimAdd(l, s, -1, fresh);
      return [{ elemType, dims: [n], value }];
    }
    case "NonZero":
      return [{ elemType: DataType.INT64, dims: x?.dims ? [x.dims.length, fresh()] : undefined }];
  }
  return [];
}
