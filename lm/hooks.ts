// Hook points: the residual-stream tensors of a causal LM export. The residual stream is found by
// structure, not by names: the first residual Add is an Add of two [batch, seq, d_model] float
// tensors one of which feeds the other (x + f(x)); its skip input is the stream's start (the
// embedding). From there every Add of a stream tensor and another tensor of the same shape
// continues the stream. Stream tensors read only by the next residual Add (the partial sum inside
// a parallel-residual block, x + attn) are not hook points. Names only supply layer numbers.
import { consumers, getIntAttr, producers } from "./graph.ts";
import type { ModelProto, NodeProto } from "./onnx.ts";
import { FLOAT_TYPES } from "./onnx.ts";
import { type Dim, inferShapes, type ShapeInfo } from "./shapes.ts";

export interface HookPoint {
  name: string;
  dims: Dim[];
  /** Position in graph order among the hook points. */
  index: number;
  /** Layer parsed from the producing node's name (`h.3`, `layers.3`, `blocks.3`); none for the embedding. */
  layer?: number;
  /**
   * TransformerLens names of this tensor (`blocks.L.hook_resid_pre|mid|post`), found by structure:
   * a tensor can be both `blocks.L.hook_resid_post` and `blocks.L+1.hook_resid_pre`.
   */
  tlNames: string[];
}

// Ops that mark a residual branch as attention (decomposed softmax attention or fused kernels).
export const ATTENTION_OPS = new Set([
  "Softmax",
  "Attention",
  "MultiHeadAttention",
  "GroupQueryAttention",
  "PackedAttention",
]);
export const PROJECTION_OPS = new Set(["MatMul", "Gemm", "MatMulNBits", "FusedMatMul"]);

const LAYER_RE = /(?:^|[/.])(?:h|layers?|blocks?|block|decoder\.layers|layer)[._](\d+)(?:[/.]|$)/;

export function layerOf(name: string): number | undefined {
  const m = LAYER_RE.exec(name);
  return m ? Number(m[1]) : undefined;
}

function sameDims(a: Dim[] | undefined, b: Dim[] | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d === b[i]);
}

/** One transformer block on the residual stream, as found by structure. */
export interface StreamBlock {
  /** Stream tensor entering the block. */
  pre: string;
  /** Stream tensor after the attention add (sequential blocks only). */
  mid?: string;
  post: string;
  /** Why the block has no resid_mid. */
  noMid?: string;
}

interface Stream {
  root: string;
  /** Stream tensors in graph order, root first. */
  order: string[];
  adds: Set<NodeProto>;
  blocks: StreamBlock[];
}

/**
 * A tensor's name before Identity and float→same-float Casts (RMSNorm's upcast of a float32
 * model), which pass the stream on unchanged; exporters let the next Add read either name.
 */
export function streamAliases(
  model: ModelProto,
  shapes: Map<string, ShapeInfo>,
): (t: string) => string {
  const alias = new Map<string, string>();
  for (const n of model.graph!.node ?? []) {
    const i = n.input?.[0], o = n.output?.[0];
    if (!i || !o) continue;
    const noopCast = n.opType === "Cast" && shapes.get(i)?.elemType === getIntAttr(n, "to", -1);
    if (n.opType === "Identity" || noopCast) alias.set(o, alias.get(i) ?? i);
  }
  return (t) => alias.get(t) ?? t;
}

/** The residual stream: its root (the embedding), its Adds in order and its blocks. */
function findStream(model: ModelProto): { stream?: Stream; shapes: Map<string, ShapeInfo> } {
  const g = model.graph!;
  const shapes = inferShapes(model);
  const prod = producers(g);
  const isStreamShaped = (t: string) => {
    const s = shapes.get(t);
    return !!s && FLOAT_TYPES.has(s.elemType) && s.dims.length === 3;
  };
  // The nodes between `b` and the tensors in `stop` (exclusive), walking backward.
  const branch = (b: string, stop: (t: string) => boolean): NodeProto[] => {
    const seen = new Set<string>();
    const nodes: NodeProto[] = [];
    const stack = [b];
    while (stack.length) {
      const t = stack.pop()!;
      if (seen.has(t) || stop(t)) continue;
      seen.add(t);
      const p = prod.get(t);
      if (!p) continue;
      nodes.push(p);
      for (const i of p.input ?? []) if (i) stack.push(i);
    }
    return nodes;
  };
  const canon = streamAliases(model, shapes);
  const candidates = (g.node ?? []).filter((n) =>
    n.opType === "Add" && n.input?.length === 2 && isStreamShaped(n.output![0]) &&
    isStreamShaped(n.input[0]) && isStreamShaped(n.input[1]) &&
    sameDims(shapes.get(n.input[0])?.dims, shapes.get(n.input[1])?.dims)
  );
  // The first residual Add is x + f(x) with a projection (MatMul) inside f: that rules out
  // elementwise sums such as GPT-2's `h + 0.044715·h³` inside the MLP.
  let root: string | undefined;
  for (const n of candidates) {
    for (const [a, b] of [[n.input![0], n.input![1]], [n.input![1], n.input![0]]]) {
      const path = branch(b, (t) => canon(t) === canon(a));
      const reachesA = path.some((p) => p.input?.some((i) => canon(i) === canon(a)));
      if (reachesA && path.some((p) => PROJECTION_OPS.has(p.opType ?? ""))) {
        root = canon(a);
        break;
      }
    }
    if (root) break;
  }
  if (!root) return { shapes };
  const streamSet = new Set([root]);
  const adds = new Set<NodeProto>();
  const ordered: NodeProto[] = [];
  const ctx: Ctx = { inStream: (t) => streamSet.has(canon(t)), canon, branch };
  // A residual add sums the stream and a branch with a projection in it (attention, MLP); an
  // elementwise function of the stream (x + c·x³) is not one.
  const projects = (n: NodeProto) => {
    const other = n.input!.find((i) => !ctx.inStream(i));
    if (other === undefined) return true; // stream + stream (a parallel block's partial sums)
    return branch(other, ctx.inStream).some((p) => PROJECTION_OPS.has(p.opType ?? ""));
  };
  for (const n of candidates) {
    if (n.input!.some(ctx.inStream) && projects(n)) {
      streamSet.add(n.output![0]);
      adds.add(n);
      ordered.push(n);
    }
  }
  const order = [root, ...ordered.map((n) => n.output![0])];
  const nameLayers = ordered.map((n) => layerOf(n.name || n.output![0]));
  const byName = nameLayers.length > 0 &&
    nameLayers.every((l, i) => l !== undefined && (i === 0 || l >= nameLayers[i - 1]!));
  const blocks = byName
    ? blocksByLayer(ordered, nameLayers as number[], ctx)
    : blocksByAttention(ordered, ctx);
  return { stream: { root, order, adds, blocks }, shapes };
}

const PARALLEL = "the block adds attention and MLP to the stream in parallel " +
  "(x + attn(x) + mlp(x)), so there is no stream tensor between them";

interface Ctx {
  inStream: (t: string) => boolean;
  /** A tensor's name before Identity / no-op Casts. */
  canon: (t: string) => string;
  branch: (b: string, stop: (t: string) => boolean) => NodeProto[];
}

/** Whether the second add of a block reads the first one's output (sequential residual). */
function readsMid(second: NodeProto, mid: string, c: Ctx): boolean {
  const other = second.input!.find((i) => c.canon(i) !== mid);
  if (other === undefined || c.inStream(other)) return true;
  return c.branch(other, c.inStream).some((p) => p.input?.some((i) => c.canon(i) === mid));
}

/** Blocks from the layer numbers in node names: the adds of one layer make one block. */
function blocksByLayer(
  ordered: NodeProto[],
  layers: number[],
  c: Ctx,
): StreamBlock[] {
  const blocks: StreamBlock[] = [];
  let i = 0;
  while (i < ordered.length) {
    let j = i;
    while (j + 1 < ordered.length && layers[j + 1] === layers[i]) j++;
    const first = ordered[i], last = ordered[j];
    const pre = c.canon(first.input!.find(c.inStream)!);
    const block: StreamBlock = { pre, post: last.output![0] };
    if (j === i) block.noMid = PARALLEL;
    else if (j === i + 1 && readsMid(last, first.output![0], c)) {
      block.mid = first.output![0];
    } else if (j === i + 1) block.noMid = PARALLEL;
    else block.noMid = `layer ${layers[i]} has ${j - i + 1} residual adds; which is mid is unclear`;
    blocks.push(block);
    i = j + 1;
  }
  return blocks;
}

/**
 * Blocks where names carry no layers: an attention add (Softmax in its branch) opens one (its
 * output is resid_mid when the MLP then reads it); an add without attention closes it. Two
 * attention adds in a row mean the first closed a parallel-residual block.
 */
function blocksByAttention(ordered: NodeProto[], c: Ctx): StreamBlock[] {
  const blocks: StreamBlock[] = [];
  let open: { pre: string; attnAdd: NodeProto } | undefined;
  for (const n of ordered) {
    const sInRaw = n.input!.find(c.inStream)!;
    const sIn = c.canon(sInRaw);
    const other = n.input!.find((i) => i !== sInRaw) ?? sInRaw;
    const attn = c.branch(other, c.inStream).some((p) => ATTENTION_OPS.has(p.opType ?? ""));
    if (attn) {
      if (open) blocks.push({ pre: open.pre, post: open.attnAdd.output![0], noMid: PARALLEL });
      open = { pre: sIn, attnAdd: n };
      continue;
    }
    if (!open) {
      blocks.push({ pre: sIn, post: n.output![0], noMid: "the block has no attention" });
      continue;
    }
    const mid = open.attnAdd.output![0];
    if (readsMid(n, mid, c)) blocks.push({ pre: open.pre, mid, post: n.output![0] });
    else blocks.push({ pre: open.pre, post: n.output![0], noMid: PARALLEL });
    open = undefined;
  }
  if (open) blocks.push({ pre: open.pre, post: open.attnAdd.output![0], noMid: PARALLEL });
  return blocks;
}

/** The residual stream's blocks by structure (empty when no residual stream is found). */
export function streamBlocks(model: ModelProto): StreamBlock[] {
  return findStream(model).stream?.blocks ?? [];
}

export function listHookPoints(model: ModelProto): HookPoint[] {
  const g = model.graph!;
  const { stream, shapes } = findStream(model);
  if (!stream) return [];
  const { root, order, adds, blocks } = stream;
  const prod = producers(g);
  const cons = consumers(g);
  const tl = new Map<string, string[]>();
  const tag = (t: string, name: string) => tl.set(t, [...(tl.get(t) ?? []), name]);
  blocks.forEach((b, l) => {
    tag(b.pre, `blocks.${l}.hook_resid_pre`);
    if (b.mid) tag(b.mid, `blocks.${l}.hook_resid_mid`);
    tag(b.post, `blocks.${l}.hook_resid_post`);
  });
  const hooks: HookPoint[] = [];
  for (const t of order) {
    const readers = cons.get(t) ?? [];
    const isOutput = (g.output ?? []).some((o) => o.name === t);
    if (
      t !== root && !isOutput && readers.length > 0 && readers.every((r) => adds.has(r)) &&
      !tl.has(t)
    ) {
      continue;
    }
    const p = prod.get(t);
    const layer = t === root ? undefined : layerOf(p?.name || t);
    const names = (tl.get(t) ?? []).sort((a, b) => tlOrder(a) - tlOrder(b));
    const h: HookPoint = {
      name: t,
      dims: shapes.get(t)!.dims,
      index: hooks.length,
      tlNames: names,
    };
    if (layer !== undefined) h.layer = layer;
    hooks.push(h);
  }
  return hooks;
}

function tlOrder(name: string): number {
  const m = /^blocks\.(\d+)\.hook_resid_(pre|mid|post)$/.exec(name);
  return m ? Number(m[1]) * 3 + ["pre", "mid", "post"].indexOf(m[2]) : 0;
}

function describe(hooks: HookPoint[]): string {
  if (hooks.length === 0) return "(no residual-stream tensors found)";
  return hooks.map((h) =>
    `${h.name} [${h.dims.join(", ")}]` +
    (h.tlNames.length
      ? ` (${h.tlNames.join(", ")})`
      : h.layer === undefined
      ? ""
      : ` (layer ${h.layer})`)
  ).join("; ");
}

const TL_RE = /^blocks\.(\d+)\.(hook_[a-z_]+)$/;

/**
 * A TransformerLens hook name (`blocks.L.hook_resid_pre|mid|post`) to a tensor name, by the
 * structure of the residual stream; undefined when `spec` is not of that form.
 */
export function resolveTlHook(model: ModelProto, spec: string): string | undefined {
  const m = TL_RE.exec(spec.trim());
  if (!m) return undefined;
  const layer = Number(m[1]);
  const kind = m[2];
  const blocks = streamBlocks(model);
  const hooks = listHookPoints(model);
  if (!["hook_resid_pre", "hook_resid_mid", "hook_resid_post"].includes(kind)) {
    throw new Error(
      `hook "${spec}": splice resolves the TransformerLens residual hooks blocks.L.hook_resid_pre, ` +
        `hook_resid_mid and hook_resid_post, not ${kind}; give a tensor name instead. ` +
        `Hook points: ${describe(hooks)}`,
    );
  }
  const b = blocks[layer];
  if (!b) {
    throw new Error(
      `hook "${spec}": the model has ${blocks.length} blocks (0..${blocks.length - 1}). ` +
        `Hook points: ${describe(hooks)}`,
    );
  }
  if (kind === "hook_resid_pre") return b.pre;
  if (kind === "hook_resid_post") return b.post;
  if (!b.mid) throw new Error(`hook "${spec}": block ${layer} has no resid_mid: ${b.noMid}`);
  return b.mid;
}

/**
 * A hook spec to a tensor name: an exact tensor name of the graph, a TransformerLens name
 * (`blocks.L.hook_resid_pre|mid|post`), `resid_post:<layer>` (the last residual-stream tensor of
 * that layer), `resid_pre:<layer>` (the one before it: the embedding for layer 0), or a substring
 * matching exactly one hook point. Anything else is an error listing the hook points.
 */
export function resolveHook(model: ModelProto, spec: string): string {
  const g = model.graph!;
  const names = new Set<string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) names.add(o);
  for (const v of g.input ?? []) names.add(v.name ?? "");
  if (names.has(spec)) return spec;
  const tl = resolveTlHook(model, spec);
  if (tl !== undefined) return tl;
  const hooks = listHookPoints(model);
  const m = /^resid_(post|pre):(-?\d+)$/.exec(spec.trim());
  if (m) {
    const layer = Number(m[2]);
    const blocks = streamBlocks(model);
    let layers = hooks.filter((h) => h.layer !== undefined).map((h) => h.layer!);
    // Layers by structure where names carry none.
    if (blocks.length && layers.length === 0) {
      const n = blocks.length;
      const want = layer < 0 ? layer + n : layer;
      const b = blocks[want];
      if (!b) {
        throw new Error(
          `hook "${spec}": no residual-stream tensor for layer ${layer} (layers 0..${n - 1}). ` +
            `Hook points: ${describe(hooks)}`,
        );
      }
      return m[1] === "post" ? b.post : b.pre;
    }
    if (layers.length === 0) {
      throw new Error(
        `hook "${spec}": no layer numbers could be read from the residual tensors' names; ` +
          `give a tensor name. Hook points: ${describe(hooks)}`,
      );
    }
    layers = [...new Set(layers)];
    const n = Math.max(...layers) + 1;
    const want = layer < 0 ? layer + n : layer;
    const post = (l: number) => hooks.filter((h) => h.layer === l).at(-1);
    const hit = m[1] === "post" ? post(want) : want === 0 ? hooks[0] : post(want - 1);
    if (!hit || (m[1] === "pre" && want === 0 && hooks[0].layer !== undefined)) {
      throw new Error(
        `hook "${spec}": no residual-stream tensor for layer ${layer} (layers 0..${n - 1}). ` +
          `Hook points: ${describe(hooks)}`,
      );
    }
    return hit.name;
  }
  const partial = hooks.filter((h) => h.name.includes(spec));
  if (partial.length === 1) return partial[0].name;
  if (partial.length > 1) {
    throw new Error(`hook "${spec}" is ambiguous: it matches ${describe(partial)}`);
  }
  throw new Error(
    `hook "${spec}" is not a tensor of this graph. Use a tensor name, resid_post:<layer> or ` +
      `blocks.<layer>.hook_resid_post. Hook points: ${describe(hooks)}`,
  );
}
