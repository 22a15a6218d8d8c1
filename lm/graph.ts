// Graph building and walking over onnx.ModelProto: node/attribute builders, producer/consumer
// maps, topological order and pruning. Everything returns new objects; inputs are never edited.
import {
  type AttributeProto,
  cloneModel,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  num,
  onnx,
  type TensorProto,
  type ValueInfoProto,
} from "./onnx.ts";

const AT = onnx.AttributeProto.AttributeType;

/** Marks a number as a FLOAT attribute even when it is a whole number (e.g. `{ float: 1 }`). */
export type FloatAttr = { float: number };
export type FloatsAttr = { floats: number[] };
export type AttrValue =
  | number
  | number[]
  | string
  | string[]
  | FloatAttr
  | FloatsAttr
  | TensorProto
  | GraphProto;

function isTensor(v: object): v is TensorProto {
  return v instanceof onnx.TensorProto || "dataType" in v || "rawData" in v;
}

// Attributes ONNX defines as FLOAT on every op that has them, though callers write them as numbers
// that may be whole (Gemm's alpha 1, a LayerNormalization epsilon of 0).
const FLOAT_NAMES = new Set(["alpha", "beta", "epsilon"]);

/**
 * Whole numbers become INT(S), others FLOAT(S), except alpha, beta and epsilon, which are always
 * FLOAT; use {float} / {floats} to force floats.
 */
export function makeAttr(name: string, v: AttrValue): AttributeProto {
  if (typeof v === "number") {
    return Number.isInteger(v) && !FLOAT_NAMES.has(name)
      ? onnx.AttributeProto.create({ name, type: AT.INT, i: v })
      : onnx.AttributeProto.create({ name, type: AT.FLOAT, f: v });
  }
  if (typeof v === "string") {
    return onnx.AttributeProto.create({ name, type: AT.STRING, s: new TextEncoder().encode(v) });
  }
  if (Array.isArray(v)) {
    // An empty list is INTS: empty axes and perms are what graphs carry, empty string lists not.
    if (v.length > 0 && v.every((x) => typeof x === "string")) {
      const strings = (v as string[]).map((s) => new TextEncoder().encode(s));
      return onnx.AttributeProto.create({ name, type: AT.STRINGS, strings });
    }
    const nums = v as number[];
    return nums.every(Number.isInteger)
      ? onnx.AttributeProto.create({ name, type: AT.INTS, ints: nums })
      : onnx.AttributeProto.create({ name, type: AT.FLOATS, floats: nums });
  }
  if ("float" in v) return onnx.AttributeProto.create({ name, type: AT.FLOAT, f: v.float });
  if ("floats" in v) return onnx.AttributeProto.create({ name, type: AT.FLOATS, floats: v.floats });
  if (isTensor(v)) return onnx.AttributeProto.create({ name, type: AT.TENSOR, t: v });
  return onnx.AttributeProto.create({ name, type: AT.GRAPH, g: v as GraphProto });
}

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttrValue | undefined> = {},
  name?: string,
  domain?: string,
): NodeProto {
  const attribute = Object.entries(attrs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => makeAttr(k, v as AttrValue));
  const node = onnx.NodeProto.create({
    opType,
    input: [...inputs],
    output: [...outputs],
    attribute,
  });
  if (name !== undefined) node.name = name;
  if (domain !== undefined) node.domain = domain;
  return node;
}

/** The attribute itself, for readers that take its fields as they are (Constant's value_*). */
export function findAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return (node.attribute ?? []).find((x) => x.name === name);
}

/** An attribute's value: INT → number, INTS → number[], STRING → string, TENSOR → TensorProto… */
export function getAttr(
  node: NodeProto,
  name: string,
): number | number[] | string | string[] | TensorProto | GraphProto | undefined {
  const a = findAttr(node, name);
  if (!a) return undefined;
  switch (a.type) {
    case AT.INT:
      return num(a.i as number);
    case AT.FLOAT:
      return a.f ?? 0;
    case AT.INTS:
      return (a.ints ?? []).map((x) => num(x as number));
    case AT.FLOATS:
      return [...(a.floats ?? [])];
    case AT.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.STRINGS:
      return (a.strings ?? []).map((s) => new TextDecoder().decode(s));
    case AT.TENSOR:
      return a.t ?? undefined;
    case AT.GRAPH:
      return a.g ?? undefined;
  }
  throw new Error(
    `node ${node.name} (${node.opType}): attribute ${name} has type ` +
      `${onnx.AttributeProto.AttributeType[a.type ?? 0]}, which getAttr does not read`,
  );
}

export function getIntAttr(node: NodeProto, name: string, dflt: number): number {
  const v = getAttr(node, name);
  return typeof v === "number" ? v : dflt;
}

export function getFloatAttr(node: NodeProto, name: string, dflt: number): number {
  const v = getAttr(node, name);
  return typeof v === "number" ? v : dflt;
}

export function getStringAttr(node: NodeProto, name: string, dflt: string): string {
  const v = getAttr(node, name);
  return typeof v === "string" ? v : dflt;
}

export function getIntsAttr(node: NodeProto, name: string): number[] | undefined {
  const v = getAttr(node, name);
  return Array.isArray(v) ? (v as number[]) : undefined;
}

/** A readable label for errors: `Add node "/blocks.0/Add"`. */
export function nodeLabel(node: NodeProto): string {
  return `${node.opType} node "${node.name || node.output?.[0] || "?"}"`;
}

/** tensor name → the node producing it. */
export function producers(graph: GraphProto): Map<string, NodeProto> {
  const m = new Map<string, NodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) m.set(o, n);
  return m;
}

/** tensor name → the nodes reading it (each once, in graph order). */
export function consumers(graph: GraphProto): Map<string, NodeProto[]> {
  const m = new Map<string, NodeProto[]>();
  for (const n of graph.node ?? []) {
    for (const i of new Set(n.input ?? [])) {
      if (!i) continue;
      const l = m.get(i);
      if (l) l.push(n);
      else m.set(i, [n]);
    }
  }
  return m;
}

/**
 * Nodes in an order where every producer comes before its consumers; among ready nodes the
 * original order is kept (so an already sorted graph is unchanged). Cycles are an error.
 */
export function topoSort(nodes: NodeProto[]): NodeProto[] {
  const prod = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => o && prod.set(o, i)));
  const deps = nodes.map((n) => {
    const s = new Set<number>();
    for (const i of n.input ?? []) {
      const p = i ? prod.get(i) : undefined;
      if (p !== undefined) s.add(p);
    }
    return s;
  });
  const users: number[][] = nodes.map(() => []);
  const pending = deps.map((d) => d.size);
  deps.forEach((d, i) => d.forEach((p) => users[p].push(i)));
  // A min-heap on the original index keeps the result stable.
  const heap: number[] = [];
  const push = (x: number) => {
    heap.push(x);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p] <= heap[i]) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
  };
  const pop = () => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && heap[l] < heap[m]) m = l;
        if (r < heap.length && heap[r] < heap[m]) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  };
  pending.forEach((c, i) => c === 0 && push(i));
  const out: NodeProto[] = [];
  while (heap.length) {
    const i = pop();
    out.push(nodes[i]);
    for (const u of users[i]) if (--pending[u] === 0) push(u);
  }
  if (out.length !== nodes.length) {
    const stuck = nodes.filter((_, i) => pending[i] > 0).slice(0, 5).map(nodeLabel);
    throw new Error(`topoSort: the graph has a cycle through ${stuck.join(", ")}`);
  }
  return out;
}

/** The names of tensors that are graph inputs or initializers (available without any node). */
export function sourceNames(graph: GraphProto): Set<string> {
  return new Set([
    ...(graph.input ?? []).map((v) => v.name ?? ""),
    ...(graph.initializer ?? []).map((t) => t.name ?? ""),
  ]);
}

/**
 * Keeps only the nodes needed to compute `outputs` (graph inputs are where the walk stops) and
 * the inputs, initializers and value_info they use. The graph outputs become `outputs`: existing
 * output ValueInfos are reused; others get `outputInfo` (or a bare name).
 */
export function pruneTo(
  model: ModelProto,
  outputs: string[],
  outputInfo: Map<string, ValueInfoProto> = new Map(),
): ModelProto {
  const m = cloneModel(model);
  const g = m.graph!;
  const inputs = new Set((g.input ?? []).map((v) => v.name ?? ""));
  const prod = producers(g);
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ""));
  const needed = new Set<string>();
  const keep = new Set<NodeProto>();
  const stack = [...outputs];
  while (stack.length) {
    const t = stack.pop()!;
    if (!t || needed.has(t)) continue;
    needed.add(t);
    if (inputs.has(t)) continue;
    const p = prod.get(t);
    if (!p) {
      if (inits.has(t)) continue;
      throw new Error(`pruneTo: tensor "${t}" is neither produced by a node nor a graph input`);
    }
    if (keep.has(p)) continue;
    keep.add(p);
    for (const i of p.input ?? []) if (i) stack.push(i);
    for (const a of p.attribute ?? []) {
      for (const sg of [a.g, ...(a.graphs ?? [])]) {
        if (sg) { for (const o of outerNames(sg)) stack.push(o); }
      }
    }
  }
  g.node = (g.node ?? []).filter((n) => keep.has(n)).map((n) => {
    // A kept node whose output is now a graph input (a cut) must not write it.
    if (!(n.output ?? []).some((o) => inputs.has(o))) return n;
    const c = cloneModelNode(n);
    c.output = (c.output ?? []).map((o) => (inputs.has(o) ? `${o}__cut` : o));
    return c;
  });
  g.input = (g.input ?? []).filter((v) => needed.has(v.name ?? ""));
  g.initializer = (g.initializer ?? []).filter((t) => needed.has(t.name ?? ""));
  g.valueInfo = (g.valueInfo ?? []).filter((v) => needed.has(v.name ?? "") && !inputs.has(v.name!));
  const old = new Map((g.output ?? []).map((v) => [v.name ?? "", v]));
  g.output = outputs.map((o) =>
    old.get(o) ?? outputInfo.get(o) ?? onnx.ValueInfoProto.create({ name: o })
  );
  return m;
}

function cloneModelNode(n: NodeProto): NodeProto {
  const c = onnx.NodeProto.create({ ...n });
  c.input = [...(n.input ?? [])];
  c.output = [...(n.output ?? [])];
  return c;
}

/** Names a subgraph reads from its enclosing scope. */
function outerNames(g: GraphProto): string[] {
  const local = new Set<string>([...sourceNames(g)]);
  for (const n of g.node ?? []) for (const o of n.output ?? []) local.add(o);
  const out: string[] = [];
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) if (i && !local.has(i)) out.push(i);
    for (const a of n.attribute ?? []) {
      for (const sg of [a.g, ...(a.graphs ?? [])]) {
        if (sg) out.push(...outerNames(sg).filter((x) => !local.has(x)));
      }
    }
  }
  return out;
}

/** A name not used by any tensor or node of the graph, from `base`. */
export function freshName(graph: GraphProto, base: string, taken?: Set<string>): string {
  const used = taken ?? allNames(graph);
  let name = base;
  for (let k = 1; used.has(name); k++) name = `${base}_${k}`;
  used.add(name);
  return name;
}

export function allNames(graph: GraphProto): Set<string> {
  const s = sourceNames(graph);
  for (const n of graph.node ?? []) {
    for (const o of n.output ?? []) s.add(o);
    if (n.name) s.add(n.name);
  }
  for (const o of graph.output ?? []) s.add(o.name ?? "");
  return s;
}

/** The model's default-domain opset version. */
export function opsetVersion(model: ModelProto): number {
  const o = (model.opsetImport ?? []).find((x) => !x.domain || x.domain === "ai.onnx");
  if (!o) throw new Error("the model imports no default-domain (ai.onnx) opset");
  return num(o.version as number);
}

/** A model from parts (default-domain opset `opset`, IR version 8). */
export function makeModel(parts: {
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers?: TensorProto[];
  opset?: number;
  name?: string;
}): ModelProto {
  return onnx.ModelProto.create({
    irVersion: 8,
    producerName: "splice",
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: "", version: parts.opset ?? 17 })],
    graph: onnx.GraphProto.create({
      name: parts.name ?? "graph",
      node: parts.nodes,
      input: parts.inputs,
      output: parts.outputs,
      initializer: parts.initializers ?? [],
    }),
  });
}
