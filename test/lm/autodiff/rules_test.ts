// Every gradient rule against float64 central finite differences on small random graphs (fresh
// inputs each run), then the same graph in float32 through ORT wasm against the reference.
import { assert, assertThrows } from "@std/assert";
import { DataType } from "../../../lm/onnx.ts";
import {
  buildGradient,
  missingGradientRules,
  NoGradientRuleError,
} from "../../../lm/autodiff/builder.ts";
import { GraphBuilder } from "../../util/onnx_graph.ts";
import { runReference } from "../../util/onnx_interp.ts";
import { checkGradient64, checkGradientOrt, type Feeds } from "../../util/gradcheck.ts";
import { freshRng, type Rng } from "../../util/rand.ts";
import { numel } from "../../../lm/autodiff/eval.ts";
import { testGpu } from "../../util/gpu.ts";

type Gen = "normal" | "pos" | { ints: number[] } | { bool: number[] };
interface Case {
  name: string;
  inputs: Record<string, { dims: number[]; gen?: Gen }>;
  /** Inputs that are not differentiated (ints, bools, conditions). */
  fixed?: string[];
  build(b: GraphBuilder, x: Record<string, string>): string;
  skipOrt?: boolean;
}

const C = (c: Case) => c;
const bin = (op: string, a: number[], b: number[], gen: Gen = "normal") =>
  C({
    name: `${op} [${a}]·[${b}]`,
    inputs: { a: { dims: a }, b: { dims: b, gen } },
    build: (g, x) => g.node(op, [x.a, x.b]),
  });
const un = (op: string, gen: Gen = "normal") =>
  C({ name: op, inputs: { a: { dims: [2, 3, 4], gen } }, build: (g, x) => g.node(op, [x.a]) });

const CASES: Case[] = [
  bin("Add", [2, 3, 4], [4]),
  bin("Add", [3, 1], [2, 3, 4]),
  bin("Sub", [2, 1, 4], [3, 4]),
  bin("Mul", [2, 3, 4], [1, 3, 1]),
  bin("Div", [2, 3], [3], "pos"),
  bin("Max", [2, 3, 4], [3, 4]),
  bin("Min", [3, 1], [3, 4]),
  ...["Neg", "Exp", "Tanh", "Sigmoid", "Erf", "Sin", "Cos", "Relu", "Identity"].map((o) => un(o)),
  ...["Log", "Sqrt", "Reciprocal"].map((o) => un(o, "pos")),
  ...[2, 3, 0.5, -1.5].map((e) =>
    C({
      name: `Pow ^${e}`,
      inputs: { a: { dims: [2, 3], gen: "pos" } },
      build: (g, x) => g.node("Pow", [x.a, g.scalar(e)]),
    })
  ),
  C({
    name: "Pow general (positive base)",
    inputs: { a: { dims: [2, 3], gen: "pos" }, b: { dims: [2, 3] } },
    build: (g, x) => g.node("Pow", [x.a, x.b]),
  }),
  C({
    name: "Cast to same float type",
    inputs: { a: { dims: [3, 4] } },
    build: (g, x) => g.node("Cast", [x.a], { to: g.dtype }),
  }),
  bin("MatMul", [2, 3, 4], [4, 5]),
  bin("MatMul", [2, 1, 3, 4], [3, 4, 5]),
  bin("MatMul", [3, 4], [4]),
  bin("MatMul", [4], [2, 4, 5]),
  bin("MatMul", [4], [4]),
  ...[[0, 0], [1, 0], [0, 1], [1, 1]].map(([ta, tb]) =>
    C({
      name: `Gemm transA=${ta} transB=${tb}`,
      inputs: {
        a: { dims: ta ? [4, 3] : [3, 4] },
        b: { dims: tb ? [5, 4] : [4, 5] },
        c: { dims: [5] },
      },
      build: (g, x) =>
        g.node("Gemm", [x.a, x.b, x.c], { transA: ta, transB: tb, alpha: 0.7, beta: 1.3 }),
    })
  ),
  C({
    name: "Transpose",
    inputs: { a: { dims: [2, 3, 4] } },
    build: (g, x) => g.node("Transpose", [x.a], { perm: [1, 2, 0] }),
  }),
  C({
    name: "Reshape",
    inputs: { a: { dims: [2, 3, 4] } },
    build: (g, x) => g.node("Reshape", [x.a, g.ints([0, -1, 2])]),
  }),
  C({
    name: "Flatten",
    inputs: { a: { dims: [2, 3, 4] } },
    build: (g, x) => g.node("Flatten", [x.a], { axis: 2 }),
  }),
  C({
    name: "Unsqueeze + Squeeze",
    inputs: { a: { dims: [2, 3] } },
    build: (g, x) => g.node("Squeeze", [g.node("Unsqueeze", [x.a, g.ints([0, -1])]), g.ints([-1])]),
  }),
  C({
    name: "Concat",
    inputs: { a: { dims: [2, 1, 4] }, b: { dims: [2, 3, 4] }, c: { dims: [2, 2, 4] } },
    build: (g, x) => g.node("Concat", [x.a, x.b, x.c], { axis: 1 }),
  }),
  C({
    name: "Split (one output unused)",
    inputs: { a: { dims: [2, 3, 7] } },
    build: (g, x) => {
      const [p, , r] = g.nodeN("Split", [x.a, g.ints([2, 3, 2])], { axis: -1 }, 3);
      return g.node("Concat", [p, r], { axis: -1 });
    },
  }),
  C({
    name: "Split equal parts, no sizes",
    inputs: { a: { dims: [4, 6] } },
    build: (g, x) => {
      const [p, q] = g.nodeN("Split", [x.a], { axis: 1 }, 2);
      return g.node("Mul", [p, q]);
    },
  }),
  C({
    name: "Slice unit steps, negative and clamped ends",
    inputs: { a: { dims: [3, 5, 6] } },
    build: (g, x) => g.node("Slice", [x.a, g.ints([1, -4]), g.ints([100, -1]), g.ints([2, 1])]),
  }),
  C({
    name: "Slice steps 2 and -1",
    inputs: { a: { dims: [3, 5, 6] } },
    build: (g, x) =>
      g.node("Slice", [x.a, g.ints([0, 4]), g.ints([6, 0]), g.ints([-1, 1]), g.ints([2, -1])]),
  }),
  C({
    name: "Gather axis 0, 2-D indices with a negative index",
    inputs: { a: { dims: [5, 3] }, i: { dims: [2, 2], gen: { ints: [0, -1, 3, 3] } } },
    fixed: ["i"],
    build: (g, x) => g.node("Gather", [x.a, x.i], { axis: 0 }),
  }),
  C({
    name: "Gather axis 1, scalar index",
    inputs: { a: { dims: [2, 4, 3] } },
    build: (g, x) => g.node("Gather", [x.a, g.constant(DataType.INT64, [], [2])], { axis: 1 }),
  }),
  C({
    name: "GatherElements last axis",
    inputs: { a: { dims: [2, 3, 4] }, i: { dims: [2, 3, 1], gen: { ints: [0, 3, 1, 2, 3, -1] } } },
    fixed: ["i"],
    build: (g, x) => g.node("GatherElements", [x.a, x.i], { axis: -1 }),
  }),
  C({
    name: "Expand",
    inputs: { a: { dims: [3, 1] } },
    build: (g, x) => g.node("Expand", [x.a, g.ints([2, 3, 4])]),
  }),
  C({
    name: "Where (broadcast x and y)",
    inputs: {
      c: { dims: [3, 4], gen: { bool: [1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0] } },
      a: { dims: [2, 3, 4] },
      b: { dims: [4] },
    },
    fixed: ["c"],
    build: (g, x) => g.node("Where", [x.c, x.a, x.b]),
  }),
  C({
    name: "Softmax last axis",
    inputs: { a: { dims: [2, 3, 5] } },
    build: (g, x) => g.node("Softmax", [x.a], { axis: -1 }),
  }),
  C({
    name: "Softmax axis 1",
    inputs: { a: { dims: [2, 3, 5] } },
    build: (g, x) => g.node("Softmax", [x.a], { axis: 1 }),
  }),
  C({
    name: "LogSoftmax",
    inputs: { a: { dims: [2, 3, 5] } },
    build: (g, x) => g.node("LogSoftmax", [x.a], { axis: -1 }),
  }),
  C({
    name: "LayerNormalization last axis",
    inputs: { a: { dims: [2, 3, 6] }, s: { dims: [6] }, b: { dims: [6] } },
    build: (g, x) => g.node("LayerNormalization", [x.a, x.s, x.b], { axis: -1, epsilon: 1e-5 }),
  }),
  C({
    name: "LayerNormalization axis 1, no bias",
    inputs: { a: { dims: [2, 3, 4] }, s: { dims: [3, 4] } },
    build: (g, x) => g.node("LayerNormalization", [x.a, x.s], { axis: 1, epsilon: 1e-3 }),
  }),
  C({
    name: "SimplifiedLayerNormalization",
    inputs: { a: { dims: [2, 3, 6] }, s: { dims: [6] } },
    build: (g, x) =>
      g.node("SimplifiedLayerNormalization", [x.a, x.s], { axis: -1, epsilon: 1e-5 }),
  }),
  C({
    name: "ReduceMean axes attr keepdims 0",
    inputs: { a: { dims: [2, 3, 4] } },
    build: (g, x) => g.node("ReduceMean", [x.a], { axes: [1], keepdims: 0 }),
  }),
  C({
    name: "ReduceSum axes input keepdims 1",
    inputs: { a: { dims: [2, 3, 4] } },
    build: (g, x) => g.node("ReduceSum", [x.a, g.ints([-1, 0])], { keepdims: 1 }),
  }),
  C({
    name: "ReduceSum all axes",
    inputs: { a: { dims: [2, 3, 4] } },
    build: (g, x) => g.node("Mul", [g.node("ReduceSum", [x.a], { keepdims: 0 }), x.a]),
  }),
  C({
    name: "Trilu lower k=1",
    inputs: { a: { dims: [2, 4, 4] } },
    build: (g, x) => g.node("Trilu", [x.a, g.constant(DataType.INT64, [], [1])], { upper: 0 }),
  }),
  C({
    name: "Constant operand",
    inputs: { a: { dims: [2, 3] } },
    build: (g, x) => g.node("Mul", [x.a, g.constant(g.dtype, [3], [0.5, -2, 3])]),
  }),
  C({
    name: "reuse: one tensor feeds several consumers",
    inputs: { a: { dims: [3, 4] } },
    build: (g, x) =>
      g.node("Mul", [g.node("Tanh", [x.a]), g.node("Add", [x.a, g.node("Exp", [x.a])])]),
  }),
];

function genValues(rng: Rng, dims: number[], gen: Gen = "normal"): Float64Array {
  const n = numel(dims);
  if (gen === "normal") return rng.normals64(n);
  if (gen === "pos") return Float64Array.from({ length: n }, () => 0.5 + 1.5 * rng.uniform());
  return Float64Array.from("ints" in gen ? gen.ints : gen.bool);
}

/** Builds the case graph with loss = Σ out ⊙ W (random W) in the given float type. */
function buildCase(c: Case, dtype: number, feeds: Feeds, w: Float64Array | null) {
  const g = new GraphBuilder(dtype);
  const names: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.inputs)) {
    const gen = v.gen;
    const t = gen && typeof gen === "object"
      ? ("ints" in gen ? DataType.INT64 : DataType.BOOL)
      : dtype;
    names[k] = g.input(k, v.dims, t);
  }
  const out = c.build(g, names);
  let loss = out;
  if (w) {
    const wt = g.init("w", [...feeds.__outdims.dims], w);
    loss = g.node("ReduceSum", [g.node("Mul", [out, wt])], { keepdims: 0 });
    g.rename(loss, "loss");
    g.output("loss", []);
  } else {
    g.rename(out, "out");
    g.output("out", []);
  }
  return g.build();
}

function caseInputs(c: Case, rng: Rng) {
  const feeds: Feeds = {};
  for (const [k, v] of Object.entries(c.inputs)) {
    const gen = v.gen;
    const dtype = gen && typeof gen === "object"
      ? ("ints" in gen ? DataType.INT64 : DataType.BOOL)
      : DataType.DOUBLE;
    feeds[k] = { dtype, dims: v.dims, data: genValues(rng, v.dims, gen) };
  }
  const fwd = runReference(buildCase(c, DataType.DOUBLE, feeds, null), feeds)["out"];
  const w = rng.normals64(numel(fwd.dims));
  const allFeeds = { ...feeds, __outdims: fwd };
  const wrt = Object.keys(c.inputs).filter((k) => !c.fixed?.includes(k));
  return { feeds, allFeeds, w, wrt };
}

Deno.test("gradient rules match float64 finite differences and run in ORT wasm (float32)", async (t) => {
  const rng = freshRng("autodiff rules");
  for (const c of CASES) {
    await t.step(c.name, async () => {
      const { feeds, allFeeds, w, wrt } = caseInputs(c, rng);
      const m64 = buildCase(c, DataType.DOUBLE, allFeeds, w);
      const grads = checkGradient64(m64, "loss", wrt, feeds, rng);
      if (!c.skipOrt) {
        const m32 = buildCase(c, DataType.FLOAT, allFeeds, w);
        await checkGradientOrt(m32, "loss", wrt, feeds, grads, "wasm");
      }
    });
  }
});

Deno.test("emitted gradient graphs run on ORT WebGPU (float32)", async (t) => {
  const rng = freshRng("autodiff rules on webgpu");
  const gpu = await testGpu();
  for (const c of CASES) {
    await t.step(c.name, async () => {
      const { feeds, allFeeds, w, wrt } = caseInputs(c, rng);
      const grads = checkGradient64(
        buildCase(c, DataType.DOUBLE, allFeeds, w),
        "loss",
        wrt,
        feeds,
        rng,
      );
      await checkGradientOrt(
        buildCase(c, DataType.FLOAT, allFeeds, w),
        "loss",
        wrt,
        feeds,
        grads,
        "webgpu",
        gpu.device,
      );
    });
  }
});

Deno.test("an op without a rule on the path is an error naming it; off the path it is fine", () => {
  const g = new GraphBuilder(DataType.DOUBLE);
  const a = g.input("a", [3]);
  const y = g.node("Softplus", [a]);
  const side = g.node("Softplus", [g.input("b", [3])]);
  const loss = g.node("ReduceSum", [g.node("Add", [y, g.node("Exp", [a])])], { keepdims: 0 });
  g.rename(loss, "loss");
  g.output("loss");
  g.output(side, [3]);
  const m = g.build();
  const missing = missingGradientRules(m, "loss", ["a"]);
  assert(missing.length === 1 && missing[0].opType === "Softplus", JSON.stringify(missing));
  const e = assertThrows(() => buildGradient(m, { loss: "loss", wrt: ["a"] }), NoGradientRuleError);
  assert(e.message.includes("Softplus") && e.message.includes(missing[0].node), e.message);
});

Deno.test("the evaluator rejects mixed float types, so float64 gradient graphs are type-checked", () => {
  const g = new GraphBuilder(DataType.DOUBLE);
  const a = g.input("a", [3]);
  g.rename(g.node("Mul", [a, g.scalar(2, DataType.FLOAT)]), "out");
  g.output("out", [3]);
  const feeds: Feeds = { a: { dtype: DataType.DOUBLE, dims: [3], data: Float64Array.of(1, 2, 3) } };
  assertThrows(() => runReference(g.build(), feeds), Error, "input types differ");
});

Deno.test("shape subgraphs carry no gradient and need no rule", () => {
  const g = new GraphBuilder(DataType.DOUBLE);
  const a = g.input("a", ["n", 4]);
  const n = g.node("Cast", [g.node("Shape", [a])], { to: DataType.DOUBLE });
  const nn = g.node("Floor", [n]); // no rule, but on an integer-derived path only
  const z = g.node("Mul", [a, g.node("ReduceSum", [nn], { keepdims: 0 })]);
  const loss = g.node("ReduceSum", [g.node("Mul", [z, a])], { keepdims: 0 });
  g.rename(loss, "loss");
  g.output("loss");
  const m = g.build();
  // Shape's output is int64, so Cast→Floor is not on the differentiable path.
  assert(missingGradientRules(m, "loss", ["a"]).length === 0);
  const rng = freshRng("shape subgraph");
  const feeds: Feeds = { a: { dtype: DataType.DOUBLE, dims: [3, 4], data: rng.normals64(12) } };
  checkGradient64(m, "loss", ["a"], feeds, rng);
});
