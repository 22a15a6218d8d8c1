// Gradient rules for MatMul (batched, broadcast, 1-D operands) and Gemm.
import type { Rule, RuleContext } from "../rule.ts";
import { getFloatAttr, getIntAttr } from "../../graph.ts";

const swapLast = (c: RuleContext, x: string) => {
  const r = c.rank(x);
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return c.op("Transpose", [x], { perm });
};

export const MATMUL_RULES: Record<string, Rule> = {
  MatMul: (c) => {
    const g = c.gy(0)!, a = c.x(0), b = c.x(1);
    const ra = c.rank(a), rb = c.rank(b);
    if (ra >= 2 && rb >= 2) {
      const ys = c.shape(c.y(0));
      const batch = ys.slice(0, -2);
      const [m, k] = c.shape(a).slice(-2), n = c.shape(b).at(-1)!;
      return [
        c.needs(0) ? c.unbroadcast(c.op("MatMul", [g, swapLast(c, b)]), a, [...batch, m, k]) : null,
        c.needs(1) ? c.unbroadcast(c.op("MatMul", [swapLast(c, a), g]), b, [...batch, k, n]) : null,
      ];
    }
    if (ra >= 2 && rb === 1) {
      const gu = c.unsqueeze(g, [-1]);
      return [
        c.needs(0) ? c.op("Mul", [gu, b]) : null,
        c.needs(1) ? c.reduceSum(c.op("Mul", [gu, a]), [...Array(ra - 1).keys()], false) : null,
      ];
    }
    if (ra === 1 && rb >= 2) {
      const gu = c.unsqueeze(g, [-2]);
      const axes = [...Array(rb).keys()].filter((i) => i !== rb - 2);
      return [
        c.needs(0) ? c.reduceSum(c.op("Mul", [b, gu]), axes, false) : null,
        c.needs(1) ? c.op("Mul", [c.unsqueeze(a, [-1]), gu]) : null,
      ];
    }
    return [c.needs(0) ? c.op("Mul", [g, b]) : null, c.needs(1) ? c.op("Mul", [g, a]) : null];
  },
  Gemm: (c) => {
    const g = c.gy(0)!, a = c.x(0), b = c.x(1);
    const ta = getIntAttr(c.node, "transA", 0), tb = getIntAttr(c.node, "transB", 0);
    const alpha = getFloatAttr(c.node, "alpha", 1), beta = getFloatAttr(c.node, "beta", 1);
    const ga = !c.needs(0)
      ? null
      : ta
      ? c.op("Gemm", [b, g], { transA: tb, transB: 1, alpha })
      : c.op("Gemm", [g, b], { transA: 0, transB: tb ? 0 : 1, alpha });
    const gb = !c.needs(1)
      ? null
      : tb
      ? c.op("Gemm", [g, a], { transA: 1, transB: ta, alpha })
      : c.op("Gemm", [a, g], { transA: ta ? 0 : 1, transB: 0, alpha });
    const gc = c.needs(2)
      ? c.unbroadcast(beta === 1 ? g : c.op("Mul", [g, c.scalar(beta, c.y(0))]), c.x(2))
      : null;
    return [ga, gb, gc];
  },
};
