// The LM side of a transcoder: its hook pair from the request (`mlp:<layer>`, or the MLP's input
// and output by TransformerLens or tensor names), the check that lets the existing KL and CE-eval
// graphs splice its output, and the prefix that yields the block's resid_post with the MLP's input
// and output. The MLP output reaches resid_post only through Adds and nothing else reads it, so
// splicing ŷ in place of mlp_out is splicing resid_post − mlp_out + ŷ at resid_post, and
// ∂KL/∂ŷ = ∂KL/∂resid_post: no new graph surgery.
import { consumers, producers, pruneTo } from "./graph.ts";
import { type MlpHookPair, mlpHookPairs, resolveMlpHookPair } from "./mlp_hooks.ts";
import type { ModelProto, NodeProto } from "./onnx.ts";
import { inferShapes, toValueInfo } from "./shapes.ts";

export type { MlpHookPair } from "./mlp_hooks.ts";

const MLP_RE = /^mlp:(\d+)$/;

/**
 * The hook pair of a transcoder: `hook` = `mlp:<layer>` (hookOut then omitted), or `hook` the MLP's
 * input and `hookOut` its output (`blocks.L.ln2.hook_normalized` / `blocks.L.hook_mlp_out` or tensor
 * names of a found pair). `storedOut`, the output a saved transcoder names, stands in for a missing
 * hookOut when `hook` names the input (with mlp:<layer> it is not a second output). Checked for the
 * splice at resid_post.
 */
export function resolveTranscoderHooks(
  model: ModelProto,
  hook: string | undefined,
  hookOut: string | undefined,
  storedOut?: string,
): MlpHookPair {
  const m = hook ? MLP_RE.exec(hook.trim()) : null;
  if (!m) hookOut ??= storedOut;
  let pair: MlpHookPair;
  if (m) {
    if (hookOut) {
      throw new Error(`hook "${hook}" names the MLP's input and output: leave hook_out out`);
    }
    const pairs = mlpHookPairs(model);
    const p = pairs.find((p) => p.layer === Number(m[1]));
    if (!p) {
      const have = pairs.length ? pairs.map((p) => `mlp:${p.layer}`).join(", ") : "none";
      throw new Error(`hook "${hook}": no MLP found in block ${m[1]}; MLPs found: ${have}`);
    }
    pair = p;
  } else {
    if (!hook || !hookOut) {
      throw new Error(
        "a transcoder needs hook = mlp:<layer>, or hook (the MLP's input, " +
          "blocks.L.ln2.hook_normalized) and hook_out (its output, blocks.L.hook_mlp_out)",
      );
    }
    pair = resolveMlpHookPair(model, { input: hook, output: hookOut });
  }
  assertSplicesAtPost(model, pair);
  return pair;
}

/**
 * Throws, naming the nodes, unless `output` is read only by Adds on the way to `post` and reaches
 * it through Adds alone (then resid_post − mlp_out + ŷ splices ŷ in place of mlp_out).
 */
export function assertSplicesAtPost(model: ModelProto, pair: MlpHookPair): void {
  const g = model.graph!;
  const prod = producers(g), cons = consumers(g);
  // The Adds whose output feeds post through Adds only (post's own producer included); kept as
  // the node objects, since names may be empty or repeated.
  const chain = new Set<NodeProto>();
  const stack = [pair.post];
  while (stack.length) {
    const p = prod.get(stack.pop()!);
    if (!p || p.opType !== "Add" || chain.has(p)) continue;
    chain.add(p);
    for (const i of p.input ?? []) if (i) stack.push(i);
  }
  const readers = cons.get(pair.output) ?? [];
  const bad = readers.filter((n) => n.opType !== "Add" || !chain.has(n));
  if (!readers.length || bad.length) {
    throw new Error(
      `the MLP output "${pair.output}" does not reach "${pair.post}" through Adds alone ` +
        `(read by ${
          bad.map((n) => `${n.opType} ${n.name}`).join(", ") || "nothing"
        }): its transcoder cannot be spliced at the block's output`,
    );
  }
}

/** The LM up to the block's output; outputs resid_post, the MLP's input and output, in order. */
export function transcoderPrefix(model: ModelProto, pair: MlpHookPair): ModelProto {
  const shapes = inferShapes(model);
  const names = [pair.post, pair.input, pair.output];
  const infos = new Map(names.map((t) => {
    const s = shapes.get(t);
    if (!s) throw new Error(`the shape of "${t}" could not be inferred`);
    return [t, toValueInfo(t, s)];
  }));
  return pruneTo(model, names, infos);
}
