// Loss heads appended after the logits as ONNX nodes, so one session returns the losses (and,
// through the gradient builder, their gradients). Only ops with autodiff rules are used:
// LogSoftmax, Exp, Sub, Mul, Div, ReduceSum, ReduceMean, Neg, GatherElements, Slice, Unsqueeze,
// Squeeze.
//
// KL per token = Σ_v p_clean·(log p_clean − log p_spliced), with the clean log-probs an input
// (`logprobs_clean`, from tap(…, {logProbs: true})) so the clean pass is not recomputed.
// CE per token at positions 0..T−2 = −log p(labels[t] | position t), labels [B, T−1] int64
// (labels = input_ids[:, 1:]). Means are over all positions, or Σ mask·x / Σ mask with masks.
import { allNames, makeNode, opsetVersion } from "./graph.ts";
import { cloneModel, DataType, makeTensor, type ModelProto, type NodeProto } from "./onnx.ts";
import { type Dim, inferShapes, toValueInfo } from "./shapes.ts";
import { logitsName } from "./surgery.ts";

export interface LossHeadOptions {
  /** The logits tensor (default: the output named "logits", or the only output). */
  logits?: string;
  /** Add kl_per_token / kl_mean (default true). */
  kl?: boolean;
  /** Add ce_per_token / ce_mean (default true). */
  ce?: boolean;
  /** Add float mask inputs `kl_mask` [B,T] and `ce_mask` [B,T−1] for the means. */
  mask?: boolean;
}

/** Names of the tensors the heads read and write (absent when that head is off). */
export interface LossHeadNames {
  logits: string;
  /** log-softmax of the logits (internal, may be made an output). */
  logprobs: string;
  logprobsClean?: string;
  labels?: string;
  klMask?: string;
  ceMask?: string;
  klPerToken?: string;
  klMean?: string;
  cePerToken?: string;
  ceMean?: string;
}

export function addLossHeads(
  model: ModelProto,
  opts: LossHeadOptions = {},
): { model: ModelProto; names: LossHeadNames } {
  const wantKl = opts.kl ?? true, wantCe = opts.ce ?? true;
  if (!wantKl && !wantCe) throw new Error("addLossHeads: neither kl nor ce was asked for");
  const opset = opsetVersion(model);
  if (opset < 13) {
    throw new Error(
      `addLossHeads: the model's opset is ${opset}; the heads need opset ≥ 13 (axes as inputs)`,
    );
  }
  const logits = opts.logits ?? logitsName(model);
  const shape = inferShapes(model).get(logits);
  if (!shape || shape.dims.length !== 3) {
    throw new Error(
      `addLossHeads: logits "${logits}" must be a rank-3 [batch, seq, vocab] tensor; ` +
        `its shape is ${shape ? `[${shape.dims}]` : "unknown"}`,
    );
  }
  const et = shape.elemType;
  if (et !== DataType.FLOAT && et !== DataType.DOUBLE) {
    throw new Error(
      `addLossHeads: logits "${logits}" are ${DataType[et]}; float32 or float64 logits are needed`,
    );
  }
  const [B, T, V] = shape.dims;
  const Tm1: Dim = typeof T === "number" ? T - 1 : `${T}_minus_1`;
  const m = cloneModel(model);
  const g = m.graph!;
  const taken = allNames(g);
  const claim = (name: string) => {
    if (taken.has(name)) {
      throw new Error(`addLossHeads: the graph already has a tensor named "${name}"`);
    }
    taken.add(name);
    return name;
  };
  const nodes: NodeProto[] = [];
  const initializers = [...(g.initializer ?? [])];
  const inputs = [...(g.input ?? [])];
  const outputs = [...(g.output ?? [])];
  const constI64 = (name: string, v: number[]) => {
    initializers.push(makeTensor(claim(name), BigInt64Array.from(v.map(BigInt)), [v.length]));
    return name;
  };
  const node = (op: string, ins: string[], out: string, attrs = {}) => {
    nodes.push(makeNode(op, ins, [out], attrs, out.startsWith("loss/") ? out : `loss/${out}`));
    return out;
  };
  const lastAxis = constI64("loss/axes_last", [-1]);
  const lp = node("LogSoftmax", [logits], claim("loss/logprobs"), { axis: -1 });
  const names: LossHeadNames = { logits, logprobs: lp };

  const mean = (x: string, maskName: string | undefined, out: string) => {
    if (!maskName) return node("ReduceMean", [x], claim(out), { keepdims: 0 });
    const masked = node("Mul", [x, maskName], claim(`loss/${out}_masked`));
    const num = node("ReduceSum", [masked], claim(`loss/${out}_num`), { keepdims: 0 });
    const den = node("ReduceSum", [maskName], claim(`loss/${out}_den`), { keepdims: 0 });
    return node("Div", [num, den], claim(out));
  };

  if (wantKl) {
    const clean = claim("logprobs_clean");
    inputs.push(toValueInfo(clean, { elemType: et, dims: [B, T, V] }));
    const pc = node("Exp", [clean], claim("loss/p_clean"));
    const diff = node("Sub", [clean, lp], claim("loss/kl_logratio"));
    const terms = node("Mul", [pc, diff], claim("loss/kl_terms"));
    const kl = node("ReduceSum", [terms, lastAxis], claim("kl_per_token"), { keepdims: 0 });
    let mask: string | undefined;
    if (opts.mask) {
      mask = claim("kl_mask");
      inputs.push(toValueInfo(mask, { elemType: et, dims: [B, T] }));
    }
    const klMean = mean(kl, mask, "kl_mean");
    outputs.push(toValueInfo(kl, { elemType: et, dims: [B, T] }));
    outputs.push(toValueInfo(klMean, { elemType: et, dims: [] }));
    Object.assign(names, { logprobsClean: clean, klPerToken: kl, klMean, klMask: mask });
  }
  if (wantCe) {
    const labels = claim("labels");
    inputs.push(toValueInfo(labels, { elemType: DataType.INT64, dims: [B, Tm1] }));
    const starts = constI64("loss/ce_starts", [0]);
    const ends = constI64("loss/ce_ends", [-1]);
    const axis1 = constI64("loss/ce_axes", [1]);
    const lpHead = node("Slice", [lp, starts, ends, axis1], claim("loss/ce_logprobs"));
    const idx = node("Unsqueeze", [labels, lastAxis], claim("loss/ce_index"));
    const picked = node("GatherElements", [lpHead, idx], claim("loss/ce_picked"), { axis: 2 });
    const sq = node("Squeeze", [picked, lastAxis], claim("loss/ce_picked_sq"));
    const ce = node("Neg", [sq], claim("ce_per_token"));
    let mask: string | undefined;
    if (opts.mask) {
      mask = claim("ce_mask");
      inputs.push(toValueInfo(mask, { elemType: et, dims: [B, Tm1] }));
    }
    const ceMean = mean(ce, mask, "ce_mean");
    outputs.push(toValueInfo(ce, { elemType: et, dims: [B, Tm1] }));
    outputs.push(toValueInfo(ceMean, { elemType: et, dims: [] }));
    Object.assign(names, { labels, cePerToken: ce, ceMean, ceMask: mask });
  }
  for (const k of Object.keys(names) as (keyof LossHeadNames)[]) {
    if (names[k] === undefined) delete names[k];
  }
  g.node = [...(g.node ?? []), ...nodes];
  g.initializer = initializers;
  g.input = inputs;
  g.output = outputs;
  return { model: m, names };
}
