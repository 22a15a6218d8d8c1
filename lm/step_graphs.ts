// The LM side of a splice step and of CE-eval as single ONNX graphs that take the clean hook
// activations x and run the clean suffix themselves. The clean log-probs [B, T, V] are born and
// die inside one session: only [B, T, d] tensors cross between the LM and the SAE (at Pythia's
// 2 × 1024 tokens and 50k vocabulary the clean log-probs alone are 412 MB; handed from a tap
// session to the KL session through ONNX Runtime Web's 4 GB heap they ran it out of memory). The
// FLOPs are those of the old tap + suffix: the tap's full forward was prefix + clean suffix.
import { buildGradient } from "./autodiff/builder.ts";
import { makeNode, pruneTo } from "./graph.ts";
import {
  cloneModel,
  DataType,
  type ModelProto,
  type NodeProto,
  onnx,
  type TensorProto,
  type ValueInfoProto,
} from "./onnx.ts";
import { suffixWithLosses } from "./splice_grad.ts";

/** A copy of `nodes` with every tensor they produce, and every node name, prefixed by `tag/`. */
function retag(nodes: NodeProto[], tag: string, inputs: Map<string, string>): NodeProto[] {
  const made = new Set(nodes.flatMap((n) => n.output ?? []));
  const name = (t: string) => (!t ? t : made.has(t) ? `${tag}/${t}` : inputs.get(t) ?? t);
  return nodes.map((n) =>
    onnx.NodeProto.create({
      ...n,
      name: `${tag}/${n.name || n.output?.[0]}`,
      input: (n.input ?? []).map(name),
      output: (n.output ?? []).map(name),
    })
  );
}

function floatInfo(name: string, like: ValueInfoProto): ValueInfoProto {
  return { name, type: structuredClone(like.type) };
}

interface Parts {
  /** The suffix with loss heads of the LM the spliced activations go through. */
  spliced: ModelProto;
  /** Its hook input ("hook"), as declared. */
  hookInfo: ValueInfoProto;
  /** Nodes of the clean suffix (reading "hook_clean"), ending in "clean/ls/lp". */
  cleanNodes: NodeProto[];
  cleanInits: TensorProto[];
}

/**
 * The pieces shared by the KL-step and the eval graph: the spliced suffix with loss heads (from
 * `spliced`, which is `model` unless the LM itself is adapted, as with LoRA on the LM) and the
 * clean suffix of `model` up to its log-probs, renamed so that both live in one graph.
 */
function parts(model: ModelProto, hook: string, spliced: ModelProto): Parts {
  const s = suffixWithLosses(spliced, hook);
  const hookInfo = s.graph!.input!.find((i) => i.name === "hook")!;
  // The clean suffix: the same construction on the unadapted LM, cut at its log-softmax.
  const c = pruneTo(suffixWithLosses(model, hook), ["ls/lp"]);
  const cleanNodes = retag(c.graph!.node ?? [], "clean", new Map([["hook", "hook_clean"]]));
  return { spliced: s, hookInfo, cleanNodes, cleanInits: c.graph!.initializer ?? [] };
}

/** Initializers of both parts, each name once (LoRA keeps the base weights' names). */
function mergeInits(a: TensorProto[] | null | undefined, b: TensorProto[]): TensorProto[] {
  const seen = new Set((a ?? []).map((t) => t.name));
  return [...(a ?? []), ...b.filter((t) => !seen.has(t.name))];
}

export interface KlStepGraphOptions {
  /** The LM the spliced activations go through, when it is not `model` (LoRA on the LM). */
  spliced?: ModelProto;
  /** Extra graph inputs (LoRA adapters) to differentiate, output as `grad_<name>`. */
  wrt?: string[];
}

/**
 * One KL step. Inputs: `hook_clean` and `hook` [B, T, d] (clean and spliced activations),
 * `kl_mask` [B, T] (1 where a position counts, 0 for skipped ones), and whichever of the LM's own
 * inputs the suffix reads (input_ids, attention_mask, position_ids) and adapter inputs. Outputs:
 * `kl_mean` = Σ mask·KL / Σ mask with KL(p_clean ‖ p_spliced) per position, and `grad_kl_hook` =
 * ∂kl_mean/∂hook (and `grad_<w>` for each extra input w).
 */
export function klStepGraph(
  model: ModelProto,
  hook: string,
  o: KlStepGraphOptions = {},
): ModelProto {
  const p = parts(model, hook, o.spliced ?? model);
  const m = cloneModel(p.spliced);
  const g = m.graph!;
  const bt = p.hookInfo.type!.tensorType!.shape!.dim!.slice(0, 2);
  const maskInfo: ValueInfoProto = {
    name: "kl_mask",
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: bt } } },
  };
  const nodes = (g.node ?? []).filter((n) => !(n.output ?? []).includes("kl_mean"));
  for (const n of nodes) {
    n.input = (n.input ?? []).map((i) => i === "logprobs_clean" ? "clean/ls/lp" : i);
  }
  nodes.unshift(...p.cleanNodes);
  nodes.push(
    makeNode("Mul", ["kl_per_token", "kl_mask"], ["step/kl_masked"], {}, "step/kl_masked"),
    makeNode("ReduceSum", ["step/kl_masked"], ["step/kl_num"], { keepdims: 0 }, "step/kl_num"),
    makeNode("ReduceSum", ["kl_mask"], ["step/kl_den"], { keepdims: 0 }, "step/kl_den"),
    makeNode("Div", ["step/kl_num", "step/kl_den"], ["kl_mean"], {}, "step/kl_mean"),
  );
  g.node = nodes;
  g.initializer = mergeInits(g.initializer, p.cleanInits);
  g.input = [
    floatInfo("hook_clean", p.hookInfo),
    ...(g.input ?? []).filter((i) => i.name !== "logprobs_clean"),
    maskInfo,
  ];
  const klMeanInfo = (g.output ?? []).find((v) => v.name === "kl_mean")!;
  const pruned = pruneTo(m, ["kl_mean"], new Map([["kl_mean", klMeanInfo]]));
  const wrt = o.wrt ?? [];
  return buildGradient(pruned, {
    loss: "kl_mean",
    wrt: ["hook", ...wrt],
    gradName: (w) => w === "hook" ? "grad_kl_hook" : `grad_${w}`,
  });
}

export interface EvalGraphOptions {
  /** The LM the spliced activations go through, when it is not `model` (LoRA on the LM). */
  spliced?: ModelProto;
}

/**
 * CE-eval of `variants` spliced activations against one clean run. Inputs: `hook_clean`,
 * `hook_0` … `hook_{n−1}` [B, T, d], `labels` [B, T] (the token ids; position t is scored
 * against labels[t + 1]) and the LM's own inputs the suffix reads. Outputs: `ce_clean`
 * [B, T−1], and per variant i `ce_<i>` [B, T−1] and `kl_<i>` [B, T] (KL(p_clean ‖ p_i)).
 */
export function ceEvalGraph(
  model: ModelProto,
  hook: string,
  variants: number,
  o: EvalGraphOptions = {},
): ModelProto {
  if (!(Number.isInteger(variants) && variants >= 1)) {
    throw new RangeError(`ceEvalGraph: variants must be a positive integer, got ${variants}`);
  }
  const p = parts(model, hook, o.spliced ?? model);
  const s = p.spliced.graph!;
  const m = cloneModel(p.spliced);
  const g = m.graph!;
  const outs = new Map((s.output ?? []).map((v) => [v.name!, v]));
  const nodes: NodeProto[] = [...p.cleanNodes];
  // Clean CE from the clean log-probs, with the heads' own nodes (they read "ls/lp" and labels).
  const ceOnly = pruneTo(p.spliced, ["ce_per_token"]).graph!.node ?? [];
  const headStart = ceOnly.findIndex((n) => n.output?.includes("ls/lp"));
  nodes.push(...retag(ceOnly.slice(headStart + 1), "clean", new Map([["ls/lp", "clean/ls/lp"]])));
  const outputs: ValueInfoProto[] = [floatInfo("ce_clean", outs.get("ce_per_token")!)];
  nodes.push(makeNode("Identity", ["clean/ce_per_token"], ["ce_clean"], {}, "eval/ce_clean"));
  const body = pruneTo(p.spliced, ["ce_per_token", "kl_per_token"]).graph!.node ?? [];
  const hooks: ValueInfoProto[] = [];
  for (let i = 0; i < variants; i++) {
    const tag = `v${i}`;
    nodes.push(
      ...retag(body, tag, new Map([["hook", `hook_${i}`], ["logprobs_clean", "clean/ls/lp"]])),
    );
    nodes.push(
      makeNode("Identity", [`${tag}/ce_per_token`], [`ce_${i}`], {}, `eval/ce_${i}`),
      makeNode("Identity", [`${tag}/kl_per_token`], [`kl_${i}`], {}, `eval/kl_${i}`),
    );
    hooks.push(floatInfo(`hook_${i}`, p.hookInfo));
    outputs.push(
      floatInfo(`ce_${i}`, outs.get("ce_per_token")!),
      floatInfo(`kl_${i}`, outs.get("kl_per_token")!),
    );
  }
  g.node = nodes;
  g.initializer = mergeInits(s.initializer, p.cleanInits);
  g.input = [
    floatInfo("hook_clean", p.hookInfo),
    ...hooks,
    ...(s.input ?? []).filter((i) => i.name !== "hook" && i.name !== "logprobs_clean"),
  ];
  g.output = outputs;
  return pruneTo(m, outputs.map((v) => v.name!), new Map(outputs.map((v) => [v.name!, v])));
}

/** A float [B, T] mask with the first `skip` positions of each sequence 0 and the rest 1. */
export function positionMask(batch: number, seq: number, skip = 0): Float32Array {
  const m = new Float32Array(batch * seq).fill(1);
  for (let b = 0; b < batch; b++) m.fill(0, b * seq, b * seq + skip);
  return m;
}
