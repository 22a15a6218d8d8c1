// Hook points: the residual-stream tensors of a causal LM export. The residual stream is found by
// structure, not by names: the first residual Add is an Add of two [batch, seq, d_model] float
// tensors one of which feeds the other (x + f(x)); its skip input is the stream's start (the
// embedding). From there every Add of a stream tensor and another tensor of the same shape
// continues the stream. Stream tensors read only by the next residual Add (the partial sum inside
// a parallel-residual block, x + attn) are not hook points. Names only supply layer numbers.
import { consumers, producers } from "./graph.ts";
import type { ModelProto, NodeProto } from "./onnx.ts";
import { DataType } from "./onnx.ts";
import { type Dim, inferShapes } from "./shapes.ts";

export interface HookPoint {
  name: string;
  dims: Dim[];
  /** Position in graph order among the hook points. */
  index: number;
  /** Layer parsed from the producing node's name (`h.3`, `layers.3`, `blocks.3`); none for the embedding. */
  layer?: number;
}

const FLOATS = new Set<number>([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.FLOAT16,
  DataType.BFLOAT16,
]);

const LAYER_RE = /(?:^|[/.])(?:h|layers?|blocks?|block|decoder\.layers|layer)[._](\d+)(?:[/.]|$)/;

export function layerOf(name: string): number | undefined {
  const m = LAYER_RE.exec(name);
  return m ? Number(m[1]) : undefined;
}

function sameDims(a: Dim[] | undefined, b: Dim[] | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d === b[i]);
}

export function listHookPoints(model: ModelProto): HookPoint[] {
  const g = model.graph!;
  const shapes = inferShapes(model);
  const prod = producers(g);
  const cons = consumers(g);
  const isStreamShaped = (t: string) => {
    const s = shapes.get(t);
    return !!s && FLOATS.has(s.elemType) && s.dims.length === 3;
  };
  // Is `a` an ancestor of `b`? (bounded backward walk)
  const feeds = (a: string, b: string): boolean => {
    const seen = new Set<string>();
    const stack = [b];
    while (stack.length) {
      const t = stack.pop()!;
      if (t === a) return true;
      if (seen.has(t)) continue;
      seen.add(t);
      const p = prod.get(t);
      if (p) { for (const i of p.input ?? []) if (i) stack.push(i); }
    }
    return false;
  };
  const candidates = (g.node ?? []).filter((n) =>
    n.opType === "Add" && n.input?.length === 2 && isStreamShaped(n.output![0]) &&
    isStreamShaped(n.input[0]) && isStreamShaped(n.input[1]) &&
    sameDims(shapes.get(n.input[0])?.dims, shapes.get(n.input[1])?.dims)
  );
  let root: string | undefined;
  for (const n of candidates) {
    const [a, b] = n.input!;
    if (feeds(a, b)) root = a;
    else if (feeds(b, a)) root = b;
    if (root) break;
  }
  if (!root) return [];
  const stream = new Set([root]);
  const adds = new Set<NodeProto>();
  for (const n of candidates) {
    if (n.input!.some((i) => stream.has(i))) {
      stream.add(n.output![0]);
      adds.add(n);
    }
  }
  const order = [root, ...(g.node ?? []).filter((n) => adds.has(n)).map((n) => n.output![0])];
  const hooks: HookPoint[] = [];
  for (const t of order) {
    const readers = cons.get(t) ?? [];
    const isOutput = (g.output ?? []).some((o) => o.name === t);
    if (t !== root && !isOutput && readers.length > 0 && readers.every((r) => adds.has(r))) {
      continue;
    }
    const p = prod.get(t);
    const layer = t === root ? undefined : layerOf(p?.name || t);
    const h: HookPoint = { name: t, dims: shapes.get(t)!.dims, index: hooks.length };
    if (layer !== undefined) h.layer = layer;
    hooks.push(h);
  }
  return hooks;
}

function describe(hooks: HookPoint[]): string {
  if (hooks.length === 0) return "(no residual-stream tensors found)";
  return hooks.map((h) =>
    `  ${h.name} [${h.dims.join(", ")}]` +
    (h.layer === undefined ? "" : ` (layer ${h.layer})`)
  ).join("\n");
}

/**
 * A hook spec to a tensor name: an exact tensor name of the graph, `resid_post:<layer>` (the last
 * residual-stream tensor of that layer), `resid_pre:<layer>` (the one before it: the embedding for
 * layer 0), or a substring matching exactly one hook point. Anything else is an error listing the
 * hook points.
 */
export function resolveHook(model: ModelProto, spec: string): string {
  const g = model.graph!;
  const hooks = listHookPoints(model);
  const m = /^resid_(post|pre):(-?\d+)$/.exec(spec.trim());
  if (m) {
    const layer = Number(m[2]);
    const layers = hooks.filter((h) => h.layer !== undefined).map((h) => h.layer!);
    if (layers.length === 0) {
      throw new Error(
        `hook "${spec}": no layer numbers could be read from the residual tensors' names; ` +
          `give a tensor name. Hook points:\n${describe(hooks)}`,
      );
    }
    const n = Math.max(...layers) + 1;
    const want = layer < 0 ? layer + n : layer;
    const post = (l: number) => hooks.filter((h) => h.layer === l).at(-1);
    const hit = m[1] === "post" ? post(want) : want === 0 ? hooks[0] : post(want - 1);
    if (!hit || (m[1] === "pre" && want === 0 && hooks[0].layer !== undefined)) {
      throw new Error(
        `hook "${spec}": no residual-stream tensor for layer ${layer} (layers 0..${n - 1}). ` +
          `Hook points:\n${describe(hooks)}`,
      );
    }
    return hit.name;
  }
  const names = new Set<string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) names.add(o);
  for (const v of g.input ?? []) names.add(v.name ?? "");
  if (names.has(spec)) return spec;
  const partial = hooks.filter((h) => h.name.includes(spec));
  if (partial.length === 1) return partial[0].name;
  if (partial.length > 1) {
    throw new Error(`hook "${spec}" is ambiguous: it matches\n${describe(partial)}`);
  }
  throw new Error(
    `hook "${spec}" is not a tensor of this graph. Use a tensor name or resid_post:<layer>. ` +
      `Hook points:\n${describe(hooks)}`,
  );
}
