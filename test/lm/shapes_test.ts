import { assert, assertEquals, assertGreater } from "@std/assert";
import {
  formatLin,
  inferShapes,
  isUnknownDim,
  linAdd,
  parseLin,
  toValueInfo,
} from "../../lm/shapes.ts";
import {
  cloneModel,
  DataType,
  loadModel,
  makeTensor,
  type ModelProto,
  onnx,
} from "../../lm/onnx.ts";
import { makeModel, makeNode } from "../../lm/graph.ts";
import { exampleShapes } from "../../lm/autodiff/builder.ts";
import { listHookPoints } from "../../lm/hooks.ts";
import { freshRng } from "../util/rand.ts";
import { loadTiny, runWasm } from "./fixture.ts";

// Every node output of tiny-neox becomes a graph output and ORT's runtime dims are compared with
// the inferred ones, symbolic dims substituted.
Deno.test("shapes: tiny-neox inferred dims match ORT's runtime dims", async () => {
  const model = await loadTiny();
  const rng = freshRng("shapes");
  const B = 1 + rng.int(3), T = 2 + rng.int(20);
  const shapes = inferShapes(model);
  const m = cloneModel(model);
  const names = m.graph!.node!.filter((n) => n.opType !== "Constant").flatMap((n) => n.output!);
  m.graph!.output = names.map((name) => onnx.ValueInfoProto.create({ name }));
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(256)));
  const out = await runWasm(m, { input_ids: { data: ids, dims: [B, T] } });
  const sub = (d: number | string) => (d === "batch" ? B : d === "seq" ? T : d);
  let known = 0;
  for (const name of names) {
    const s = shapes.get(name);
    assert(s, `no shape inferred for ${name}`);
    const got = out[name].dims;
    assertEquals(s.dims.length, got.length, `${name}: rank`);
    s.dims.forEach((d, i) => {
      if (isUnknownDim(d)) return;
      assertEquals(sub(d), got[i], `${name} dim ${i}: inferred ${s.dims}, ORT [${got}]`);
    });
    if (!s.dims.some(isUnknownDim)) known++;
  }
  assertEquals(known, names.length, "every tiny-neox tensor's dims should be known");
  assertEquals(shapes.get("logits")!.dims, ["batch", "seq", 256]);
  assertEquals(shapes.get("logits")!.elemType, onnx.TensorProto.DataType.FLOAT);
});

Deno.test("shapes: inputDims makes every dim concrete", async () => {
  const model = await loadTiny();
  const shapes = inferShapes(model, { input_ids: [3, 7] });
  assertEquals(shapes.get("/blocks.2/Add_2_output_0")!.dims, [3, 7, 128]);
  assertEquals(shapes.get("/blocks.0/Softmax_output_0")!.dims, [3, 4, 7, 7]);
  let n = 0;
  for (const s of shapes.values()) if (s.dims.every((d) => typeof d === "number")) n++;
  assertGreater(n, shapes.size - 1);
});

// ---- Hugging Face export patterns: symbolic sums, causal-mask slicing, past/new Concat, Range.

const vi = (name: string, elemType: number, dims: (number | string)[]) =>
  toValueInfo(name, { elemType, dims });
const i64 = (name: string, v: number[], dims = [v.length]) =>
  makeTensor(name, BigInt64Array.from(v.map(BigInt)), dims);

/**
 * k = past + seq keys (Concat of past and new along the sequence), the causal-mask buffer sliced
 * as HF does (bias[:, :, k−q:k, :k]) and positions Range(past, past + seq).
 */
function hfPatterns(pastDim: number | string): ModelProto {
  const n = makeNode;
  return makeModel({
    nodes: [
      n("Concat", ["past", "x"], ["kv"], { axis: 1 }),
      n("Shape", ["kv"], ["kv_shape"]),
      n("Gather", ["kv_shape", "one"], ["k"], { axis: 0 }),
      n("Shape", ["x"], ["x_shape"]),
      n("Gather", ["x_shape", "one"], ["q"], { axis: 0 }),
      n("Sub", ["k", "q"], ["k_minus_q"]),
      n("Unsqueeze", ["k_minus_q", "zero1"], ["start"]),
      n("Unsqueeze", ["k", "zero1"], ["end"]),
      n("Slice", ["bias", "start", "end", "two1"], ["rows"]),
      n("Slice", ["rows", "zero1", "end", "three1"], ["causal"]),
      n("Shape", ["past"], ["past_shape"]),
      n("Gather", ["past_shape", "one"], ["p"], { axis: 0 }),
      n("Add", ["p", "q"], ["p_plus_q"]),
      n("Range", ["p", "p_plus_q", "one"], ["positions"]),
      n("Transpose", ["kv"], ["kvT"], { perm: [0, 2, 1] }),
      n("MatMul", ["x", "kvT"], ["scores"]),
      n("Unsqueeze", ["scores", "one1"], ["scores4"]),
      n("Cast", ["causal"], ["causal_f"], { to: DataType.FLOAT }),
      n("Add", ["scores4", "causal_f"], ["masked"]),
    ],
    initializers: [
      makeTensor("bias", new Float32Array(64 * 64), [1, 1, 64, 64]),
      i64("one", [1], []),
      i64("zero1", [0]),
      i64("one1", [1]),
      i64("two1", [2]),
      i64("three1", [3]),
    ],
    inputs: [
      vi("x", DataType.FLOAT, ["batch", "seq", 4]),
      vi("past", DataType.FLOAT, ["batch", pastDim, 4]),
    ],
    outputs: [vi("masked", DataType.FLOAT, [])],
    opset: 17,
  });
}

Deno.test("shapes: HF causal-mask slice, past/new Concat and Range keep symbolic sums", async () => {
  const model = hfPatterns("past");
  const s = inferShapes(model);
  assertEquals(s.get("kv")!.dims, ["batch", "past + seq", 4]);
  assertEquals(s.get("rows")!.dims, [1, 1, "seq", 64]);
  assertEquals(s.get("causal")!.dims, [1, 1, "seq", "past + seq"]);
  assertEquals(s.get("positions")!.dims, ["seq"]);
  assertEquals(s.get("masked")!.dims, ["batch", 1, "seq", "past + seq"]);
  // The same dims at runtime (every tensor an output).
  const rng = freshRng("shapes hf");
  const B = 1 + rng.int(3), T = 1 + rng.int(6), P = rng.int(5);
  const m = cloneModel(model);
  const names = ["kv", "rows", "causal", "positions", "masked"];
  m.graph!.output = names.map((name) => onnx.ValueInfoProto.create({ name }));
  const out = await runWasm(m, {
    x: { data: new Float32Array(B * T * 4), dims: [B, T, 4] },
    past: { data: new Float32Array(B * P * 4), dims: [B, P, 4] },
  });
  const env: Record<string, number> = { batch: B, seq: T, past: P };
  for (const name of names) {
    const want = s.get(name)!.dims.map((d) => {
      if (typeof d === "number") return d;
      const l = parseLin(d)!;
      return [...l.t].reduce((a, [k, c]) => a + c * env[k], l.c);
    });
    assertEquals(out[name].dims, want, name);
  }
});

Deno.test("shapes: a dim_value of 0 is a real 0, and past + seq with past = 0 is seq", () => {
  const s = inferShapes(hfPatterns(0));
  assertEquals(s.get("kv")!.dims, ["batch", "seq", 4]);
  assertEquals(s.get("rows")!.dims, [1, 1, "seq", 64]);
  assertEquals(s.get("causal")!.dims, [1, 1, "seq", "seq"]);
  assertEquals(s.get("positions")!.dims, ["seq"]);
});

Deno.test("shapes: linear dim names parse, add and print canonically", () => {
  const fresh = () => "?x";
  const a = parseLin("past_sequence_length + sequence_length")!;
  assertEquals(
    formatLin(linAdd(a, parseLin("sequence_length")!, -1), fresh),
    "past_sequence_length",
  );
  assertEquals(formatLin(linAdd(parseLin("seq")!, parseLin(0)!, 1), fresh), "seq");
  assertEquals(formatLin(parseLin("past_sequence_length + 1")!, fresh), "past_sequence_length + 1");
  assertEquals(formatLin(linAdd(parseLin("a - 2")!, parseLin("b")!, 2), fresh), "a + 2*b - 2");
  // A sum holding an unknown is unknown.
  assertEquals(formatLin(linAdd(parseLin("?3")!, parseLin("seq")!, 1), fresh), "?x");
  assertEquals(parseLin("weird name(1)")!.t.get("weird name(1)"), 1);
});

Deno.test("exampleShapes: 'past_sequence_length + 1' agrees with its terms; dim_value 0 is 0", () => {
  // mask [batch, past + 1] must broadcast against Concat(past [batch, past], one [batch, 1]).
  const m = makeModel({
    nodes: [
      makeNode("Concat", ["past", "new"], ["kv"], { axis: 1 }),
      makeNode("Add", ["kv", "mask"], ["y"]),
      makeNode("Concat", ["zero_len", "new"], ["kv0"], { axis: 1 }),
    ],
    inputs: [
      vi("past", DataType.FLOAT, ["batch", "past_sequence_length"]),
      vi("new", DataType.FLOAT, ["batch", 1]),
      vi("mask", DataType.FLOAT, ["batch", "past_sequence_length + 1"]),
      vi("zero_len", DataType.FLOAT, ["batch", 0]),
    ],
    outputs: [vi("y", DataType.FLOAT, []), vi("kv0", DataType.FLOAT, [])],
  });
  const assigned: Record<string, number> = {};
  const s = exampleShapes(m, {}, assigned);
  assertEquals(s.get("y")!.dims, [assigned.batch, assigned.past_sequence_length + 1]);
  assertEquals(s.get("kv0")!.dims, [assigned.batch, 1]);
});

Deno.test("shapes: raw HF exports (with past) keep [batch, seq, d] on every hook point", async () => {
  const dir = new URL("../fixtures/hf/", import.meta.url).pathname;
  for (const f of ["gpt2-with-past.onnx", "neox-with-past.onnx", "llama-with-past.onnx"]) {
    let model;
    try {
      model = await loadModel(`${dir}${f}`);
    } catch {
      continue; // fixtures not generated in this checkout
    }
    const hooks = listHookPoints(model);
    assert(hooks.length >= 3, `${f}: ${hooks.length} hook points`);
    for (const h of hooks) assertEquals(h.dims, ["batch_size", "sequence_length", 64], h.name);
    assertEquals(hooks.at(-1)!.tlNames.at(-1), "blocks.1.hook_resid_post", f);
  }
});
