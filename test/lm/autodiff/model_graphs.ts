// Small LM graphs in the styles of common exports, built op by op as torch.onnx would emit them:
// GPT-2 (learned positions, decomposed LayerNorm, Gemm, Split qkv, sliced causal-mask buffer,
// tanh GELU via Pow, tied unembedding) and Llama (RMSNorm via Pow/ReduceMean/Sqrt/Div, Sin/Cos
// rotary, grouped KV heads via Expand, Trilu causal mask, SwiGLU via Sigmoid, untied unembedding).
// Inputs: input_ids, labels [batch, seq] int64; output: loss = mean next-token NLL (scalar).
import { DataType } from "../../../lm/onnx.ts";
import { GraphBuilder } from "../../util/onnx_graph.ts";
import type { Rng } from "../../util/rand.ts";

export interface LmDims {
  vocab: number;
  d: number;
  heads: number;
  mlp: number;
  ctx: number;
}

const I64 = DataType.INT64;

/** Shape(x)[a:b] as an int64 vector. */
const dims = (g: GraphBuilder, x: string, a: number, b: number) =>
  g.node("Slice", [g.node("Shape", [x]), g.ints([a]), g.ints([b])]);

function headsView(g: GraphBuilder, x: string, h: number, hd: number): string {
  // [B,T,h·hd] → [B,h,T,hd]
  const shp = g.node("Concat", [dims(g, x, 0, 2), g.ints([h, hd])], { axis: 0 });
  return g.node("Transpose", [g.node("Reshape", [x, shp])], { perm: [0, 2, 1, 3] });
}

function mergeHeads(g: GraphBuilder, x: string, d: number): string {
  const t = g.node("Transpose", [x], { perm: [0, 2, 1, 3] });
  const shp = g.node("Concat", [dims(g, t, 0, 2), g.ints([d])], { axis: 0 });
  return g.node("Reshape", [t, shp]);
}

function nllLoss(g: GraphBuilder, logits: string): void {
  const lp = g.node("LogSoftmax", [logits], { axis: -1 });
  const picked = g.node("GatherElements", [lp, g.node("Unsqueeze", ["labels", g.ints([-1])])], {
    axis: -1,
  });
  g.rename(g.node("ReduceMean", [g.node("Neg", [picked])], { keepdims: 0 }), "loss");
  g.output("loss");
}

const w = (g: GraphBuilder, rng: Rng, name: string, shape: number[], scale: number) =>
  g.init(name, shape, rng.normals64(shape.reduce((a, b) => a * b, 1), scale));

export function gpt2Graph(dtype: number, c: LmDims, rng: Rng) {
  const g = new GraphBuilder(dtype);
  const { vocab, d, heads, mlp, ctx } = c, hd = d / heads;
  g.input("input_ids", ["batch", "seq"], I64);
  g.input("labels", ["batch", "seq"], I64);
  const wte = w(g, rng, "wte", [vocab, d], 0.5), wpe = w(g, rng, "wpe", [ctx, d], 0.5);
  const seq = g.node("Gather", [g.node("Shape", ["input_ids"]), g.constant(I64, [], [1])], {
    axis: 0,
  });
  const pos = g.node("Range", [g.constant(I64, [], [0]), seq, g.constant(I64, [], [1])]);
  let x = g.node("Add", [g.node("Gather", [wte, "input_ids"]), g.node("Gather", [wpe, pos])]);
  // ln_1, decomposed as older GPT-2 exports do.
  const mean = g.node("ReduceMean", [x], { axes: [-1] });
  const xc = g.node("Sub", [x, mean]);
  const vr = g.node("ReduceMean", [g.node("Pow", [xc, g.scalar(2)])], { axes: [-1] });
  const ln1 = g.node("Add", [
    g.node("Mul", [
      g.node("Div", [xc, g.node("Sqrt", [g.node("Add", [vr, g.scalar(1e-5)])])]),
      w(g, rng, "ln1.g", [d], 0.3),
    ]),
    w(g, rng, "ln1.b", [d], 0.1),
  ]);
  // Conv1D as Gemm on [B·T, d].
  const flat = g.node("Reshape", [ln1, g.ints([-1, d])]);
  const qkv2 = g.node("Gemm", [
    flat,
    w(g, rng, "c_attn.w", [d, 3 * d], 0.4),
    w(g, rng, "c_attn.b", [3 * d], 0.1),
  ]);
  const qkv = g.node("Reshape", [
    qkv2,
    g.node("Concat", [dims(g, x, 0, 2), g.ints([3 * d])], { axis: 0 }),
  ]);
  const [q, k, v] = g.nodeN("Split", [qkv, g.ints([d, d, d])], { axis: 2 }, 3).map((t) =>
    headsView(g, t, heads, hd)
  );
  let s = g.node("Div", [
    g.node("MatMul", [q, g.node("Transpose", [k], { perm: [0, 1, 3, 2] })]),
    g.scalar(Math.sqrt(hd)),
  ]);
  const bias = g.constant(
    DataType.BOOL,
    [1, 1, ctx, ctx],
    Array.from({ length: ctx * ctx }, (_, i) => +(i % ctx <= Math.floor(i / ctx))),
  );
  const seq1 = g.node("Unsqueeze", [seq, g.ints([0])]);
  const mask = g.node("Slice", [
    bias,
    g.ints([0, 0]),
    g.node("Concat", [seq1, seq1], { axis: 0 }),
    g.ints([2, 3]),
  ]);
  s = g.node("Where", [mask, s, g.scalar(-1e4)]);
  const o = mergeHeads(g, g.node("MatMul", [g.node("Softmax", [s], { axis: -1 }), v]), d);
  x = g.node("Add", [
    x,
    g.node("Add", [
      g.node("MatMul", [o, w(g, rng, "c_proj.w", [d, d], 0.4)]),
      w(g, rng, "c_proj.b", [d], 0.1),
    ]),
  ]);
  const ln2 = g.node("LayerNormalization", [
    x,
    w(g, rng, "ln2.g", [d], 0.3),
    w(g, rng, "ln2.b", [d], 0.1),
  ], { axis: -1, epsilon: 1e-5 });
  const hdn = g.node("Add", [
    g.node("MatMul", [ln2, w(g, rng, "fc.w", [d, mlp], 0.4)]),
    w(g, rng, "fc.b", [mlp], 0.1),
  ]);
  const inner = g.node("Mul", [
    g.scalar(Math.sqrt(2 / Math.PI)),
    g.node("Add", [hdn, g.node("Mul", [g.scalar(0.044715), g.node("Pow", [hdn, g.scalar(3)])])]),
  ]);
  const gelu = g.node("Mul", [
    g.node("Mul", [g.scalar(0.5), hdn]),
    g.node("Add", [g.scalar(1), g.node("Tanh", [inner])]),
  ]);
  x = g.node("Add", [
    x,
    g.node("Add", [
      g.node("MatMul", [gelu, w(g, rng, "proj.w", [mlp, d], 0.3)]),
      w(g, rng, "proj.b", [d], 0.1),
    ]),
  ]);
  g.rename(x, "resid_post");
  const lnf = g.node("LayerNormalization", [
    "resid_post",
    w(g, rng, "lnf.g", [d], 0.3),
    w(g, rng, "lnf.b", [d], 0.1),
  ], { axis: -1, epsilon: 1e-5 });
  nllLoss(g, g.node("MatMul", [lnf, g.node("Transpose", [wte], { perm: [1, 0] })]));
  return g.build();
}

function rmsNorm(g: GraphBuilder, x: string, weight: string): string {
  const ms = g.node("ReduceMean", [g.node("Pow", [x, g.scalar(2)])], { axes: [-1] });
  return g.node("Mul", [
    weight,
    g.node("Div", [x, g.node("Sqrt", [g.node("Add", [ms, g.scalar(1e-6)])])]),
  ]);
}

export function llamaGraph(dtype: number, c: LmDims, rng: Rng) {
  const g = new GraphBuilder(dtype);
  const { vocab, d, heads, mlp } = c, hd = d / heads;
  g.input("input_ids", ["batch", "seq"], I64);
  g.input("labels", ["batch", "seq"], I64);
  let x = g.node("Gather", [w(g, rng, "embed", [vocab, d], 0.5), "input_ids"]);
  const h = rmsNorm(g, x, w(g, rng, "attn_norm", [d], 0.5));
  const q = headsView(g, g.node("MatMul", [h, w(g, rng, "wq", [d, d], 0.4)]), heads, hd);
  // One KV head shared by all query heads (grouped-query attention), widened by Expand.
  const kvWiden = (t: string) =>
    g.node("Expand", [headsView(g, t, 1, hd), g.ints([1, heads, 1, 1])]);
  let k = kvWiden(g.node("MatMul", [h, w(g, rng, "wk", [d, hd], 0.4)]));
  const v = kvWiden(g.node("MatMul", [h, w(g, rng, "wv", [d, hd], 0.4)]));
  // Rotary: angles from positions (no gradient), rotate-half form.
  const seq = g.node("Gather", [g.node("Shape", ["input_ids"]), g.constant(I64, [], [1])], {
    axis: 0,
  });
  const pos = g.node("Cast", [
    g.node("Range", [g.constant(I64, [], [0]), seq, g.constant(I64, [], [1])]),
  ], { to: dtype });
  const inv = g.constant(
    dtype,
    [hd / 2],
    Array.from({ length: hd / 2 }, (_, i) => 1 / 10000 ** (2 * i / hd)),
  );
  const fr = g.node("Mul", [g.node("Unsqueeze", [pos, g.ints([-1])]), inv]);
  const emb = g.node("Concat", [fr, fr], { axis: -1 });
  const cos = g.node("Cos", [emb]), sin = g.node("Sin", [emb]);
  const rope = (t: string) => {
    const x1 = g.node("Slice", [t, g.ints([0]), g.ints([hd / 2]), g.ints([-1])]);
    const x2 = g.node("Slice", [t, g.ints([hd / 2]), g.ints([hd]), g.ints([-1])]);
    const rot = g.node("Concat", [g.node("Neg", [x2]), x1], { axis: -1 });
    return g.node("Add", [g.node("Mul", [t, cos]), g.node("Mul", [rot, sin])]);
  };
  k = rope(k);
  let s = g.node("Mul", [
    g.node("MatMul", [rope(q), g.node("Transpose", [k], { perm: [0, 1, 3, 2] })]),
    g.scalar(1 / Math.sqrt(hd)),
  ]);
  const seq1 = g.node("Unsqueeze", [seq, g.ints([0])]);
  const ones = g.node("ConstantOfShape", [g.node("Concat", [seq1, seq1], { axis: 0 })], {
    value: {
      name: "v",
      dataType: dtype,
      dims: [1],
      rawData: new Uint8Array(
        dtype === DataType.FLOAT ? Float32Array.of(1).buffer : Float64Array.of(1).buffer,
      ),
    },
  });
  const future = g.node("Equal", [g.node("Trilu", [ones], { upper: 0 }), g.scalar(0)]);
  s = g.node("Where", [future, g.scalar(-1e9), s]);
  const o = mergeHeads(g, g.node("MatMul", [g.node("Softmax", [s], { axis: -1 }), v]), d);
  x = g.node("Add", [x, g.node("MatMul", [o, w(g, rng, "wo", [d, d], 0.4)])]);
  const h2 = rmsNorm(g, x, w(g, rng, "mlp_norm", [d], 0.5));
  const gate = g.node("MatMul", [h2, w(g, rng, "w_gate", [d, mlp], 0.4)]);
  const silu = g.node("Mul", [gate, g.node("Sigmoid", [gate])]);
  const up = g.node("MatMul", [h2, w(g, rng, "w_up", [d, mlp], 0.4)]);
  x = g.node("Add", [
    x,
    g.node("MatMul", [g.node("Mul", [silu, up]), w(g, rng, "w_down", [mlp, d], 0.3)]),
  ]);
  g.rename(x, "resid_post");
  nllLoss(
    g,
    g.node("MatMul", [
      rmsNorm(g, "resid_post", w(g, rng, "final_norm", [d], 0.5)),
      w(g, rng, "lm_head", [d, vocab], 0.4),
    ]),
  );
  return g.build();
}
