// splice-grad: the LM side of the KL fine-tune. One tap session (clean logits, clean log-probs and
// the hook tensor) and ONE suffix session (hook tensor in; spliced logits, per-token KL and CE,
// their means, and the gradients of the means with respect to the spliced-in tensor out).
//
// Definitions (fixtures/tiny-neox/README.md): kl = Σ_v p_clean·(log p_clean − log p_spliced);
// ce at positions 0..T−2 against the next token; gradients are of the means over tokens.
import { makeNode } from "./graph.ts";
import {
  cloneModel,
  DataType,
  makeTensor,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from "./onnx.ts";
import { buildGradient, exampleShapes } from "./autodiff/builder.ts";
import { createSessions, type ExecutionProvider, type LmSession, ort } from "./session.ts";
import { feedsFor } from "./signature.ts";

export class SpliceGradError extends Error {
  override name = "SpliceGradError";
}

// Clones share the weights' bytes (cloneModel): a re-encode would copy them, and fail past
// protobuf's 2 GB.

function node(
  op: string,
  inputs: string[],
  output: string,
  attrs: Record<string, number | number[]> = {},
): NodeProto {
  return makeNode(op, inputs, [output], attrs, output);
}

function intsConst(name: string, values: number[]): NodeProto {
  const value = makeTensor(name, BigInt64Array.from(values.map(BigInt)), [values.length]);
  return makeNode("Constant", [], [name], { value }, name);
}

type Dim = { dimValue?: number; dimParam?: string };
function tensorType(elemType: number, dims: Dim[]): NonNullable<ValueInfoProto["type"]> {
  return { tensorType: { elemType, shape: { dim: dims } } };
}

function logitsName(model: ModelProto): string {
  const outs = model.graph!.output ?? [];
  const hit = outs.find((o) => o.name === "logits") ?? (outs.length === 1 ? outs[0] : undefined);
  if (!hit) {
    throw new SpliceGradError(
      `cannot tell which output holds the logits (outputs: ${outs.map((o) => o.name).join(", ")})`,
    );
  }
  return hit.name!;
}

/** The hook tensor's dims with symbolic dims named as in the graph inputs. */
function hookDims(model: ModelProto, hook: string): Dim[] {
  const assigned: Record<string, number> = {};
  const shapes = exampleShapes(model, {}, assigned);
  const t = shapes.get(hook);
  if (!t) throw new SpliceGradError(`hook "${hook}" is not a tensor of the graph`);
  const byValue = new Map(Object.entries(assigned).map(([k, v]) => [v, k]));
  return t.dims.map((d) => (byValue.has(d) ? { dimParam: byValue.get(d) } : { dimValue: d }));
}

/** The whole graph, also returning the hook tensor and the clean log-probs. */
export function tapModel(model: ModelProto, hook: string): ModelProto {
  const m = cloneModel(model);
  const g = m.graph!;
  const logits = logitsName(m);
  const dims = hookDims(model, hook);
  g.node!.push(node("LogSoftmax", [logits], "logprobs_clean", { axis: -1 }));
  const lo = g.output!.find((o) => o.name === logits)!;
  g.output = [lo, { name: hook, type: tensorType(DataType.FLOAT, dims) }, {
    name: "logprobs_clean",
    type: lo.type,
  }];
  return m;
}

/**
 * The part of the graph after the hook (hook tensor as the input "hook") plus loss heads:
 * inputs hook [B,T,d], logprobs_clean [B,T,V], labels [B,T] int64 (the token ids) (and any original input the
 * suffix still reads); outputs logits, kl_per_token, kl_mean, ce_per_token, ce_mean.
 */
export function suffixWithLosses(model: ModelProto, hook: string): ModelProto {
  const m = cloneModel(model);
  const g = m.graph!;
  const logits = logitsName(m);
  const dims = hookDims(model, hook);
  // Keep only nodes the logits need, stopping at the hook.
  const need = new Set([logits]);
  const kept: NodeProto[] = [];
  for (const n of [...g.node!].reverse()) {
    if (!n.output!.some((o) => need.has(o))) continue;
    if (n.output!.includes(hook)) continue;
    kept.push(n);
    for (const i of n.input ?? []) if (i && i !== hook) need.add(i);
  }
  g.node = kept.reverse();
  for (const n of g.node) n.input = n.input!.map((i) => (i === hook ? "hook" : i));
  const used = new Set(g.node.flatMap((n) => n.input ?? []));
  g.initializer = g.initializer!.filter((t) => used.has(t.name!));
  const V = Number(exampleShapes(model).get(logits)!.dims.at(-1));
  const bt = dims.slice(0, 2);
  g.input = [
    { name: "hook", type: tensorType(DataType.FLOAT, dims) },
    ...g.input!.filter((i) => used.has(i.name!)),
    { name: "logprobs_clean", type: tensorType(DataType.FLOAT, [...bt, { dimValue: V }]) },
    // The token ids [B,T]; the next-token labels are ids[:, 1:], taken inside the graph so that
    // every dim is B or T.
    { name: "labels", type: tensorType(DataType.INT64, bt) },
  ];
  g.node.push(
    node("LogSoftmax", [logits], "ls/lp", { axis: -1 }),
    node("Exp", ["logprobs_clean"], "ls/p"),
    node("Sub", ["logprobs_clean", "ls/lp"], "ls/diff"),
    node("Mul", ["ls/p", "ls/diff"], "ls/kl_terms"),
    intsConst("ls/last", [-1]),
    node("ReduceSum", ["ls/kl_terms", "ls/last"], "kl_per_token", { keepdims: 0 }),
    node("ReduceMean", ["kl_per_token"], "kl_mean", { keepdims: 0 }),
    intsConst("ls/s0", [0]),
    intsConst("ls/e1", [-1]),
    intsConst("ls/ax1", [1]),
    node("Slice", ["ls/lp", "ls/s0", "ls/e1", "ls/ax1"], "ls/lp_head"),
    intsConst("ls/big", [2 ** 53]),
    node("Slice", ["labels", "ls/ax1", "ls/big", "ls/ax1"], "ls/next"),
    node("Unsqueeze", ["ls/next", "ls/last"], "ls/labels3"),
    node("GatherElements", ["ls/lp_head", "ls/labels3"], "ls/picked", { axis: -1 }),
    node("Squeeze", ["ls/picked", "ls/last"], "ls/picked2"),
    node("Neg", ["ls/picked2"], "ce_per_token"),
    node("ReduceMean", ["ce_per_token"], "ce_mean", { keepdims: 0 }),
  );
  const f = (name: string, d: Dim[]) => ({ name, type: tensorType(DataType.FLOAT, d) });
  g.output = [
    f(logits, [...bt, { dimValue: V }]),
    f("kl_per_token", bt),
    f("kl_mean", []),
    f("ce_per_token", [bt[0], {}]),
    f("ce_mean", []),
  ];
  return m;
}

/** The suffix with loss heads and both gradients: grad_kl_hook and grad_ce_hook. */
export function suffixGradModel(model: ModelProto, hook: string): ModelProto {
  let m = suffixWithLosses(model, hook);
  m = buildGradient(m, { loss: "kl_mean", wrt: ["hook"], gradName: () => "grad_kl_hook" });
  m = buildGradient(m, { loss: "ce_mean", wrt: ["hook"], gradName: () => "grad_ce_hook" });
  return m;
}

export interface SpliceInputs {
  inputIds: BigInt64Array;
  recon: Float32Array;
  /** [B, T] */
  batch: number;
  seq: number;
  /** [B, T] padding mask (1 = token); ones when absent. */
  attentionMask?: BigInt64Array;
}

export interface F32 {
  dims: number[];
  data: Float32Array;
}

export interface SpliceGradSessions {
  tap: LmSession;
  suffix: LmSession;
  logits: string;
  release(): Promise<void>;
}

export async function createSpliceGradSessions(
  model: ModelProto,
  hook: string,
  opts: { ep: ExecutionProvider; device?: GPUDevice },
): Promise<SpliceGradSessions> {
  const logits = logitsName(model);
  const [tap, suffix] = (await createSessions([
    { model: tapModel(model, hook), opts },
    { model: suffixGradModel(model, hook), opts },
  ])) as LmSession[];
  return {
    tap,
    suffix,
    logits,
    release: async () => {
      await tap.release();
      await suffix.release();
    },
  };
}

const f32 = (t: ort.Tensor): F32 => ({
  dims: [...t.dims],
  data: Float32Array.from(t.data as Float32Array),
});

/** Runs tap + suffix (spliced recon, then zeros) and returns the fixture's tensors. */
export async function spliceGrad(
  s: SpliceGradSessions,
  inp: SpliceInputs,
): Promise<Record<string, F32>> {
  const { batch: B, seq: T } = inp;
  const ids = new ort.Tensor("int64", inp.inputIds, [B, T]);
  const lm = { ids: inp.inputIds, batch: B, seq: T, mask: inp.attentionMask };
  const tapOut = await s.tap.run(feedsFor(s.tap.inputNames, {}, lm));
  const hookName = s.tap.outputNames.find((n) => n !== s.logits && n !== "logprobs_clean")!;
  const d = tapOut[hookName].dims.at(-1)!;
  if (inp.recon.length !== B * T * d) {
    throw new SpliceGradError(`recon has ${inp.recon.length} values; the hook is [${B},${T},${d}]`);
  }
  const feeds = (hook: Float32Array): Record<string, ort.Tensor> => {
    return feedsFor(s.suffix.inputNames, {
      hook: new ort.Tensor("float32", hook, [B, T, d]),
      logprobs_clean: tapOut["logprobs_clean"],
      labels: ids,
    }, lm);
  };
  const sp = await s.suffix.run(feeds(inp.recon));
  const zero = await s.suffix.run(feeds(new Float32Array(B * T * d)));
  // CE of the clean run: the suffix fed with the clean hook tensor.
  const clean = await s.suffix.run(feeds(tapOut[hookName].data as Float32Array));
  return {
    logits_clean: f32(tapOut[s.logits]),
    logits_spliced: f32(sp[s.logits]),
    kl_per_token: f32(sp["kl_per_token"]),
    ce_clean_per_token: f32(clean["ce_per_token"]),
    ce_spliced_per_token: f32(sp["ce_per_token"]),
    ce_zero_per_token: f32(zero["ce_per_token"]),
    grad_kl_recon: f32(sp["grad_kl_hook"]),
    grad_ce_recon: f32(sp["grad_ce_hook"]),
  };
}
