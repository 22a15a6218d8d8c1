// The float64 evaluator's ops from Hugging Face mask / position subgraphs (CumSum, ScatterND,
// Tile, Mod, IsInf, IsNaN) agree with ONNX Runtime on fresh random inputs; in shape mode they
// give dims without values.
import { assert, assertEquals } from "@std/assert";
import { makeModel, makeNode } from "../../../lm/graph.ts";
import { evalGraph } from "../../../lm/autodiff/eval.ts";
import { DataType, makeTensor, onnx, type TensorProto } from "../../../lm/onnx.ts";
import { toValueInfo } from "../../../lm/shapes.ts";
import { freshRng } from "../../util/rand.ts";
import { runWasm } from "../fixture.ts";

const rng = freshRng("eval mask ops");

interface Case {
  name: string;
  node: ReturnType<typeof makeNode>;
  inits?: TensorProto[];
  outType?: number;
}

const X = [2, 3, 4];
const i64 = (name: string, v: number[], dims = [v.length]) =>
  makeTensor(name, BigInt64Array.from(v.map(BigInt)), dims);

const CASES: Case[] = [
  {
    name: "CumSum axis 2",
    node: makeNode("CumSum", ["x", "ax"], ["y"]),
    inits: [i64("ax", [2], [])],
  },
  {
    name: "CumSum exclusive reverse axis 1",
    node: makeNode("CumSum", ["x", "ax"], ["y"], { exclusive: 1, reverse: 1 }),
    inits: [i64("ax", [1], [])],
  },
  { name: "Tile", node: makeNode("Tile", ["x", "rep"], ["y"]), inits: [i64("rep", [1, 2, 3])] },
  {
    name: "Mod fmod",
    node: makeNode("Mod", ["x", "m"], ["y"], { fmod: 1 }),
    inits: [makeTensor("m", Float32Array.of(0.7), [])],
  },
  {
    name: "ScatterND",
    node: makeNode("ScatterND", ["x", "idx", "upd"], ["y"]),
    inits: [
      i64("idx", [1, 2, 0, 0], [2, 2]),
      makeTensor("upd", Float32Array.from({ length: 8 }, (_, i) => i - 4), [2, 4]),
    ],
  },
  {
    name: "IsInf",
    node: makeNode("IsInf", ["xi"], ["y"]),
    outType: DataType.BOOL,
  },
  { name: "IsNaN", node: makeNode("IsNaN", ["xi"], ["y"]), outType: DataType.BOOL },
];

for (const c of CASES) {
  Deno.test(`evaluator ${c.name} matches ORT`, async () => {
    const x = rng.normals(X.reduce((a, b) => a * b, 1), 2);
    const inits = [...(c.inits ?? [])];
    const nodes = [c.node];
    if (c.node.input!.includes("xi")) {
      // Some infinities and NaNs among the values.
      nodes.unshift(makeNode("Div", ["x", "x0"], ["xi"]));
      const den = Float32Array.from(x, () => (rng.int(3) === 0 ? 0 : 1));
      inits.push(makeTensor("x0", den, X));
    }
    const model = makeModel({
      nodes,
      initializers: inits,
      inputs: [toValueInfo("x", { elemType: DataType.FLOAT, dims: X })],
      outputs: [onnx.ValueInfoProto.create({
        name: "y",
        type: { tensorType: { elemType: c.outType ?? DataType.FLOAT } },
      })],
    });
    const want = (await runWasm(model, { x: { data: x, dims: X } })).y;
    const got = evalGraph(model, {
      x: { dtype: DataType.FLOAT, dims: X, data: Float64Array.from(x) },
    }).get("y")!;
    assertEquals(got.dims, want.dims);
    const w = Array.from(want.data as ArrayLike<number | boolean>, Number);
    for (let i = 0; i < w.length; i++) {
      const g = got.data![i];
      assert(
        Math.abs(g - w[i]) <= 1e-5 * (1 + Math.abs(w[i])) ||
          (Number.isNaN(g) && Number.isNaN(w[i])),
        `${c.name}[${i}]: ${g} vs ${w[i]}`,
      );
    }
    // Shape mode: dims only.
    const shaped = evalGraph(model, { x: { dtype: DataType.FLOAT, dims: X, data: null } }, {
      shapeMode: true,
    }).get("y")!;
    assertEquals(shaped.dims, want.dims);
  });
}
