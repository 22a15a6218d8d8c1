// Transcoder hook pairs: for each block, the MLP's input (after its norm, what its first
// projections read) and the MLP's output (the term the block adds to the residual stream), found
// by structure as lm/hooks.ts finds the stream. Walking back from the block's resid_post through
// the residual Adds gives the terms added to the stream; the term whose branch holds a projection
// and no attention op is the MLP's output. Its first projections (those with no projection before
// them in the branch) read the MLP's input, through shape-only ops (GPT-2's Gemm reads a 2-D
// Reshape of it). The MLP output reaches resid_post through Adds only, so a transcoder's ŷ splices
// in as resid_post − mlp_out + ŷ, and ∂/∂ŷ of anything downstream is ∂/∂resid_post.
import { producers } from "./graph.ts";
import { ATTENTION_OPS, PROJECTION_OPS, streamAliases, streamBlocks } from "./hooks.ts";
import type { ModelProto, NodeProto } from "./onnx.ts";
import { inferShapes } from "./shapes.ts";

export interface MlpHookPair {
  /** Block index in stream order (TransformerLens' L). */
  layer: number;
  /** What the MLP reads: its norm's output [batch, seq, d] (`blocks.L.ln2.hook_normalized`). */
  input: string;
  /** What the MLP adds to the stream [batch, seq, d] (`blocks.L.hook_mlp_out`). */
  output: string;
  /** The block's resid_post, which `output` reaches through Adds only. */
  post: string;
}

// Ops between a norm's output and a projection that change only the view of the tensor.
const VIEW_OPS = new Set(["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast"]);

/** Each block's MLP input and output, in block order; blocks without an MLP are left out. */
export function mlpHookPairs(model: ModelProto): MlpHookPair[] {
  const g = model.graph!;
  const shapes = inferShapes(model);
  const prod = producers(g);
  const canon = streamAliases(model, shapes);
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const dimsOf = (t: string) => shapes.get(t)?.dims;
  // Weights, and what is computed from weights alone (an fp16 weight's Cast): not activations.
  const konst = new Map<string, boolean>();
  const isConst = (t: string): boolean => {
    if (inits.has(t)) return true;
    if (!konst.has(t)) {
      const p = prod.get(t);
      konst.set(t, !!p && (p.input ?? []).filter(Boolean).every(isConst));
    }
    return konst.get(t)!;
  };
  const pairs: MlpHookPair[] = [];
  streamBlocks(model).forEach((b, layer) => {
    const width = dimsOf(b.post)?.at(-1);
    const streamLike = (t: string) => {
      const d = dimsOf(t);
      return !!d && d.length === 3 && d[2] === width;
    };
    // The residual chain pre → … → post and the terms added along it.
    const chain = new Set([canon(b.pre)]);
    const terms: string[] = [];
    const reachesPre = (t: string): boolean => {
      if (chain.has(canon(t))) return true;
      const p = prod.get(canon(t));
      return !!p && p.opType === "Add" && (p.input ?? []).some(reachesPre);
    };
    const walk = (t: string) => {
      if (chain.has(canon(t))) return;
      chain.add(canon(t));
      const p = prod.get(canon(t))!;
      for (const i of p.input ?? []) reachesPre(i) ? walk(i) : expand(i);
    };
    // A sum of branch outputs (GPT-NeoX's mlp + attn before the residual add) is split into them.
    const expand = (t: string) => {
      const p = prod.get(canon(t));
      if (p?.opType === "Add" && p.input?.length === 2 && p.input.every(streamLike)) {
        p.input.forEach(expand);
      } else terms.push(t);
    };
    walk(b.post);
    const branch = (t: string): NodeProto[] => {
      const seen = new Set<string>(), nodes: NodeProto[] = [], stack = [t];
      while (stack.length) {
        const u = stack.pop()!;
        if (seen.has(u) || chain.has(canon(u))) continue;
        seen.add(u);
        const p = prod.get(u);
        if (!p) continue;
        nodes.push(p);
        for (const i of p.input ?? []) if (i) stack.push(i);
      }
      return nodes;
    };
    const mlps = terms.filter((t) => {
      const ops = branch(t).map((n) => n.opType ?? "");
      return !ops.some((o) => ATTENTION_OPS.has(o)) && ops.some((o) => PROJECTION_OPS.has(o));
    });
    if (mlps.length !== 1) return;
    const output = mlps[0];
    const projections = branch(output).filter((n) => PROJECTION_OPS.has(n.opType ?? ""));
    const dataInput = (n: NodeProto) => (n.input ?? []).find((i) => i && !isConst(i))!;
    const first = projections.filter((n) =>
      !branch(dataInput(n)).some((m) => PROJECTION_OPS.has(m.opType ?? ""))
    );
    const inputs = new Set(first.map((n) => {
      let t = dataInput(n);
      while (!streamLike(t) && VIEW_OPS.has(prod.get(t)?.opType ?? "")) t = prod.get(t)!.input![0];
      return t;
    }));
    if (inputs.size !== 1) return;
    const input = [...inputs][0];
    if (!streamLike(input)) return;
    pairs.push({ layer, input, output, post: b.post });
  });
  return pairs;
}

const TL_RE = /^blocks\.(\d+)\.(ln2\.hook_normalized|hook_mlp_out)$/;

/**
 * A transcoder's hook pair from TransformerLens names or tensor names: `input` and `output` each
 * `blocks.L.ln2.hook_normalized` / `blocks.L.hook_mlp_out` or a tensor name of a found pair; both
 * must name the same block's MLP. Anything else is an error listing the pairs.
 */
export function resolveMlpHookPair(
  model: ModelProto,
  spec: { input: string; output: string },
): MlpHookPair {
  const pairs = mlpHookPairs(model);
  const list = pairs.length
    ? pairs.map((p) => `block ${p.layer}: ${p.input} → ${p.output}`).join("; ")
    : "(no MLP found by structure)";
  const find = (s: string, side: "input" | "output") => {
    const m = TL_RE.exec(s.trim());
    if (m) {
      const want = side === "input" ? "ln2.hook_normalized" : "hook_mlp_out";
      if (m[2] !== want) {
        throw new Error(`transcoder ${side} "${s}": the ${side} hook is blocks.L.${want}`);
      }
      const p = pairs.find((p) => p.layer === Number(m[1]));
      if (!p) throw new Error(`transcoder ${side} "${s}": block ${m[1]} has no MLP found. ${list}`);
      return p;
    }
    const p = pairs.find((p) => p[side] === s);
    if (!p) {
      throw new Error(
        `transcoder ${side} "${s}" is not an MLP ${side} of this graph; use ` +
          `blocks.L.ln2.hook_normalized and blocks.L.hook_mlp_out or a tensor name. MLPs: ${list}`,
      );
    }
    return p;
  };
  const a = find(spec.input, "input"), b = find(spec.output, "output");
  if (a.layer !== b.layer) {
    throw new Error(
      `transcoder hooks "${spec.input}" (block ${a.layer}) and "${spec.output}" (block ` +
        `${b.layer}) are different blocks' MLP input and output`,
    );
  }
  return a;
}
