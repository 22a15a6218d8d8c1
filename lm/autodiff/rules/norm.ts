// Gradient rules for softmaxes, normalisations and reductions. Normalisation statistics are
// recomputed from the inputs in the backward graph (the forward node does not expose them).
import type { Rule, RuleContext } from "../rule.ts";
import { getFloatAttr, getIntAttr, getIntsAttr } from "../../graph.ts";

const normAxis = (a: number, r: number) => (a < 0 ? a + r : a);

function layerNormGrad(c: RuleContext, centred: boolean): (string | null)[] {
  if (c.node.output!.slice(1).some((_, i) => c.gy(i + 1))) {
    throw c.error("gradients through the Mean/InvStdDev outputs are not supported");
  }
  const x = c.x(0), scale = c.x(1), bias = c.x(2), g = c.gy(0)!;
  const r = c.rank(x), a = normAxis(getIntAttr(c.node, "axis", -1), r);
  const eps = getFloatAttr(c.node, "epsilon", 1e-5);
  const axes = Array.from({ length: r - a }, (_, i) => a + i);
  const xc = centred ? c.op("Sub", [x, c.reduceMean(x, axes, true)]) : x;
  const v = c.reduceMean(c.op("Mul", [xc, xc]), axes, true);
  const inv = c.op("Reciprocal", [c.op("Sqrt", [c.op("Add", [v, c.scalar(eps, x)])])]);
  const xhat = c.op("Mul", [xc, inv]);
  let gx: string | null = null;
  if (c.needs(0)) {
    const gh = c.op("Mul", [g, scale]);
    let inner = c.op("Sub", [
      gh,
      c.op("Mul", [xhat, c.reduceMean(c.op("Mul", [gh, xhat]), axes, true)]),
    ]);
    if (centred) inner = c.op("Sub", [inner, c.reduceMean(gh, axes, true)]);
    gx = c.op("Mul", [inv, inner]);
  }
  const gs = c.needs(1) ? c.unbroadcast(c.op("Mul", [g, xhat]), scale) : null;
  const gb = bias && c.needs(2) ? c.unbroadcast(g, bias) : null;
  return [gx, gs, gb];
}

function reduceGrad(c: RuleContext, mean: boolean): (string | null)[] {
  const x = c.x(0), r = c.rank(x), g = c.gy(0)!;
  const fromInput = !mean ? c.opset >= 13 : c.opset >= 18;
  let axes: number[] | null;
  if (fromInput) {
    if (c.x(1)) {
      const v = c.value(c.x(1));
      if (!v) throw c.error("reduction axes must be constant to differentiate");
      axes = Array.from(v);
    } else axes = null;
  } else axes = getIntsAttr(c.node, "axes") ?? null;
  if ((!axes || !axes.length) && getIntAttr(c.node, "noop_with_empty_axes", 0)) return [g, null];
  const ax = (axes && axes.length ? axes : [...Array(r).keys()]).map((v) => normAxis(v, r)).sort((
    p,
    q,
  ) => p - q);
  const keep = getIntAttr(c.node, "keepdims", 1) === 1;
  let gx = c.op("Expand", [keep ? g : c.unsqueeze(g, ax), c.op("Shape", [x])]);
  if (mean) {
    const to = c.dtype(x);
    const ratio = c.op("Div", [
      c.op("Cast", [c.op("Size", [c.y(0)])], { to }),
      c.op("Cast", [c.op("Size", [x])], { to }),
    ]);
    gx = c.op("Mul", [gx, ratio]);
  }
  return [gx, null];
}

export const NORM_RULES: Record<string, Rule> = {
  Softmax: (c) => {
    const y = c.y(0), g = c.gy(0)!, a = normAxis(getIntAttr(c.node, "axis", -1), c.rank(y));
    const s = c.reduceSum(c.op("Mul", [g, y]), [a], true);
    return [c.op("Mul", [y, c.op("Sub", [g, s])])];
  },
  LogSoftmax: (c) => {
    const y = c.y(0), g = c.gy(0)!, a = normAxis(getIntAttr(c.node, "axis", -1), c.rank(y));
    const s = c.reduceSum(g, [a], true);
    return [c.op("Sub", [g, c.op("Mul", [c.op("Exp", [y]), s])])];
  },
  LayerNormalization: (c) => layerNormGrad(c, true),
  SimplifiedLayerNormalization: (c) => layerNormGrad(c, false),
  ReduceSum: (c) => reduceGrad(c, false),
  ReduceMean: (c) => reduceGrad(c, true),
};
