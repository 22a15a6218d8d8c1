// Gradient rules for data-movement ops: the gradient is moved back to where each value came from.
// Gathers and strided slices scatter through a one-hot MatMul (standard ops on every EP).
import type { Rule, RuleContext } from "../rule.ts";
import { getIntAttr, getIntsAttr } from "../../graph.ts";

const INT64 = 7;
const normAxis = (a: number, r: number) => (a < 0 ? a + r : a);

const reshapeBack: Rule = (c) => [c.op("Reshape", [c.gy(0)!, c.op("Shape", [c.x(0)])])];

/** Runtime size of dim `a` of x, as a [1] int64 tensor. */
const dimOf = (c: RuleContext, x: string, a: number) =>
  c.op("Slice", [c.op("Shape", [x]), c.ints([a]), c.ints([a + 1])]);

/** One-hot [idx…, N] in the float type of `like`, for int64 indices already in [0, N). */
const oneHot = (c: RuleContext, idx: string, n1: string, like: string) => {
  const n = c.op("Squeeze", [n1, c.ints([0])]);
  const zero = c.op("Squeeze", [c.ints([0]), c.ints([0])]);
  const one = c.op("Squeeze", [c.ints([1]), c.ints([0])]);
  const range = c.op("Range", [zero, n, one]);
  const eq = c.op("Equal", [c.unsqueeze(idx, [-1]), range]);
  return c.op("Cast", [eq], { to: c.dtype(like) });
};

/** Indices as int64 with negatives wrapped (n1: [1] int64 axis size). */
const normIndices = (c: RuleContext, idx: string, n1: string) => {
  const i64 = c.dtype(idx) === INT64 ? idx : c.op("Cast", [idx], { to: INT64 });
  const neg = c.op("Less", [i64, c.ints([0])]);
  return c.op("Where", [neg, c.op("Add", [i64, n1]), i64]);
};

/**
 * Scatter-add for Gather along axis a: g has dims D[:a] + I + D[a+1:]; result has data's dims.
 * idx: int64 indices in [0, N) of rank ri.
 */
function gatherGrad(
  c: RuleContext,
  g: string,
  idx: string,
  ri: number,
  data: string,
  a: number,
): string {
  const r = c.rank(data);
  const n1 = dimOf(c, data, a);
  const oh = c.op("Reshape", [
    oneHot(c, idx, n1, data),
    c.op("Concat", [c.ints([-1]), n1], { axis: 0 }),
  ]);
  const rg = r - 1 + ri;
  const perm = [
    ...Array.from({ length: a }, (_, i) => i),
    ...Array.from({ length: rg - a - ri }, (_, i) => a + ri + i),
    ...Array.from({ length: ri }, (_, i) => a + i),
  ];
  const g2 = perm.every((p, i) => p === i) ? g : c.op("Transpose", [g], { perm });
  const lead = c.op("Slice", [c.op("Shape", [g2]), c.ints([0]), c.ints([r - 1])]);
  const g3 = c.op("Reshape", [g2, c.op("Concat", [lead, c.ints([-1])], { axis: 0 })]);
  const m = c.op("MatMul", [g3, oh]);
  const back = [
    ...Array.from({ length: a }, (_, i) => i),
    r - 1,
    ...Array.from({ length: r - 1 - a }, (_, i) => a + i),
  ];
  return back.every((p, i) => p === i) ? m : c.op("Transpose", [m], { perm: back });
}

export const SHAPE_RULES: Record<string, Rule> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Constant: () => [],
  Transpose: (c) => {
    const r = c.rank(c.x(0));
    const perm = getIntsAttr(c.node, "perm") ?? [...Array(r).keys()].reverse();
    const inv = new Array(r);
    perm.forEach((p, i) => (inv[p] = i));
    return [c.op("Transpose", [c.gy(0)!], { perm: inv })];
  },
  Expand: (c) => [c.unbroadcast(c.gy(0)!, c.x(0))],
  Trilu: (c) => {
    const ins = [c.gy(0)!];
    if (c.x(1)) ins.push(c.x(1));
    return [c.op("Trilu", ins, { upper: getIntAttr(c.node, "upper", 1) }), null];
  },
  Concat: (c) => {
    const n = c.node.input!.length, a = normAxis(getIntAttr(c.node, "axis", 0), c.rank(c.y(0)));
    const sizes = c.op("Concat", c.node.input!.map((x) => dimOf(c, x, a)), { axis: 0 });
    return c.emit("Split", [c.gy(0)!, sizes], { axis: a }, n);
  },
  Split: (c) => {
    const a = normAxis(getIntAttr(c.node, "axis", 0), c.rank(c.x(0)));
    const parts = c.node.output!.map((y, i) => c.gy(i) ?? c.zerosLike(y));
    return [c.op("Concat", parts, { axis: a }), null];
  },
  Slice: (c) => {
    const x = c.x(0), r = c.rank(x);
    const nAx = c.shape(c.x(1))[0];
    const axesV = c.x(3) ? c.value(c.x(3)) : Float64Array.from({ length: nAx }, (_, i) => i);
    if (!axesV) throw c.error("Slice axes must be constant to differentiate");
    const axes = Array.from(axesV, (v) => normAxis(v, r));
    const stepsV = c.x(4) ? c.value(c.x(4)) : null;
    const unitSteps = !c.x(4) || (stepsV !== null && stepsV.every((s) => s === 1));
    // For each sliced axis, the source positions are Slice applied to 0..N−1 (this reuses ORT's
    // own clamping of starts/ends).
    const pick = (t: string, i: number) => c.op("Slice", [t, c.ints([i]), c.ints([i + 1])]);
    const idxs = axes.map((a, i) => {
      const n1 = dimOf(c, x, a);
      const range = c.op("Range", [
        c.op("Squeeze", [c.ints([0]), c.ints([0])]),
        c.op("Squeeze", [n1, c.ints([0])]),
        c.op("Squeeze", [c.ints([1]), c.ints([0])]),
      ]);
      const sIn = [range, pick(c.x(1), i), pick(c.x(2), i), c.ints([0])];
      if (c.x(4)) sIn.push(pick(c.x(4), i));
      return { a, n1, idx: c.op("Slice", sIn) };
    });
    let g = c.gy(0)!;
    if (unitSteps) {
      const before: string[] = [], after: string[] = [];
      for (let d = 0; d < r; d++) {
        const hit = idxs.find((q) => q.a === d);
        if (!hit) {
          before.push(c.ints([0]));
          after.push(c.ints([0]));
          continue;
        }
        const first = c.op("Slice", [hit.idx, c.ints([0]), c.ints([1])]);
        const last = c.op("Slice", [hit.idx, c.ints([-1]), c.ints([2 ** 62])]);
        before.push(first);
        after.push(c.op("Sub", [c.op("Sub", [hit.n1, last]), c.ints([1])]));
      }
      const pads = c.op("Concat", [...before, ...after], { axis: 0 });
      return [c.op("Pad", [g, pads]), null, null, null, null];
    }
    for (const q of idxs.reverse()) g = gatherGrad(c, g, q.idx, 1, x, q.a);
    return [g, null, null, null, null];
  },
  Gather: (c) => {
    const x = c.x(0), r = c.rank(x), a = normAxis(getIntAttr(c.node, "axis", 0), r);
    const idx = normIndices(c, c.x(1), dimOf(c, x, a));
    return [gatherGrad(c, c.gy(0)!, idx, c.rank(c.x(1)), x, a), null];
  },
  GatherElements: (c) => {
    const x = c.x(0), r = c.rank(x), a = normAxis(getIntAttr(c.node, "axis", 0), r);
    const xs = c.shape(x), is = c.shape(c.x(1));
    if (xs.some((d, i) => i !== a && d !== is[i])) {
      throw c.error(`indices [${is}] must match data [${xs}] except on axis ${a}`);
    }
    const n1 = dimOf(c, x, a);
    const oh = oneHot(c, normIndices(c, c.x(1), n1), n1, x);
    const s = c.reduceSum(c.op("Mul", [c.unsqueeze(c.gy(0)!, [-1]), oh]), [a], false);
    const back = [
      ...Array.from({ length: a }, (_, i) => i),
      r - 1,
      ...Array.from({ length: r - 1 - a }, (_, i) => a + i),
    ];
    return [back.every((p, i) => p === i) ? s : c.op("Transpose", [s], { perm: back }), null];
  },
};
