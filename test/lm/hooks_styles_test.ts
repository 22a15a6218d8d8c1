// Hook listing on small GPT-2-style (sequential residual, learned positions via Range, tied
// unembedding, decomposed LayerNorm, tanh GELU via Pow) and Llama-style (decomposed RMSNorm, SiLU,
// `/model/layers.i` names) graphs built here, with inferred shapes checked against ORT.
import { assert, assertEquals } from "@std/assert";
import { makeModel, makeNode } from "../../lm/graph.ts";
import { listHookPoints, resolveHook } from "../../lm/hooks.ts";
import { cloneModel, DataType, makeTensor, type ModelProto, onnx } from "../../lm/onnx.ts";
import { inferShapes, isUnknownDim, toValueInfo } from "../../lm/shapes.ts";
import { suffix } from "../../lm/surgery.ts";
import { freshRng, type Rng } from "../util/rand.ts";
import { runWasm } from "./fixture.ts";

const D = 8, V = 11, L = 2, CTX = 16;

function builder(rng: Rng) {
  const nodes: ReturnType<typeof makeNode>[] = [];
  const inits: ReturnType<typeof makeTensor>[] = [];
  const w = (name: string, dims: number[], scale = 0.3) => {
    inits.push(makeTensor(name, rng.normals(dims.reduce((a, b) => a * b, 1), scale), dims));
    return name;
  };
  const c = (name: string, v: number) => {
    inits.push(makeTensor(name, Float32Array.of(v), []));
    return name;
  };
  const op = (type: string, ins: string[], name: string, attrs = {}) => {
    nodes.push(makeNode(type, ins, [`${name}_output_0`], attrs, name));
    return `${name}_output_0`;
  };
  return { nodes, inits, w, c, op };
}

function gpt2(rng: Rng): ModelProto {
  const { nodes, inits, w, c, op } = builder(rng);
  const wte = w("transformer.wte.weight", [V, D]);
  const tok = op("Gather", [wte, "input_ids"], "/transformer/wte/Gather");
  const shape = op("Shape", ["input_ids"], "/transformer/Shape");
  // A scalar index gives a scalar seq, as torch exports do; Range takes scalars.
  const scalar = (name: string, v: bigint) => {
    inits.push(makeTensor(name, BigInt64Array.of(v), []));
    return name;
  };
  const seq = op("Gather", [shape, scalar("one", 1n)], "/transformer/Gather");
  const positions = op("Range", [scalar("zero", 0n), seq, "one"], "/transformer/Range");
  const wpe = op(
    "Gather",
    [w("transformer.wpe.weight", [CTX, D]), positions],
    "/transformer/wpe/Gather",
  );
  let x = op("Add", [tok, wpe], "/transformer/Add");
  const ln = (x: string, p: string) => {
    const mean = op("ReduceMean", [x], `${p}/ReduceMean`, { axes: [-1] });
    const xc = op("Sub", [x, mean], `${p}/Sub`);
    const var_ = op(
      "ReduceMean",
      [op("Pow", [xc, c(`${p}.two`, 2)], `${p}/Pow`)],
      `${p}/ReduceMean_1`,
      { axes: [-1] },
    );
    const sd = op("Sqrt", [op("Add", [var_, c(`${p}.eps`, 1e-5)], `${p}/Add`)], `${p}/Sqrt`);
    const y = op("Div", [xc, sd], `${p}/Div`);
    return op(
      "Add",
      [op("Mul", [y, w(`${p}.w`, [D])], `${p}/Mul`), w(`${p}.b`, [D])],
      `${p}/Add_1`,
    );
  };
  for (let l = 0; l < L; l++) {
    const p = `/transformer/h.${l}`;
    const a = op("MatMul", [ln(x, `${p}/ln_1`), w(`h.${l}.attn`, [D, D])], `${p}/attn/MatMul`);
    const mid = op("Add", [x, a], `${p}/Add`);
    const h = op(
      "MatMul",
      [ln(mid, `${p}/ln_2`), w(`h.${l}.fc`, [D, 2 * D])],
      `${p}/mlp/c_fc/MatMul`,
    );
    const h3 = op("Mul", [
      op("Pow", [h, c(`${p}.three`, 3)], `${p}/mlp/Pow`),
      c(`${p}.k`, 0.044715),
    ], `${p}/mlp/Mul`);
    const t = op("Tanh", [op("Add", [h, h3], `${p}/mlp/Add`)], `${p}/mlp/Tanh`);
    const g = op("Mul", [h, op("Add", [t, c(`${p}.one`, 1)], `${p}/mlp/Add_1`)], `${p}/mlp/Mul_1`);
    const m = op("MatMul", [g, w(`h.${l}.proj`, [2 * D, D])], `${p}/mlp/c_proj/MatMul`);
    x = op("Add", [mid, m], `${p}/Add_1`);
  }
  const f = ln(x, "/transformer/ln_f");
  const wt = op("Transpose", [wte], "/lm_head/Transpose", { perm: [1, 0] });
  nodes.push(makeNode("MatMul", [f, wt], ["logits"], {}, "/lm_head/MatMul"));
  return makeModel({
    nodes,
    initializers: inits,
    inputs: [toValueInfo("input_ids", { elemType: DataType.INT64, dims: ["batch", "seq"] })],
    outputs: [toValueInfo("logits", { elemType: DataType.FLOAT, dims: ["batch", "seq", V] })],
  });
}

function llama(rng: Rng): ModelProto {
  const { nodes, inits, w, c, op } = builder(rng);
  let x = op(
    "Gather",
    [w("model.embed_tokens.weight", [V, D]), "input_ids"],
    "/model/embed_tokens/Gather",
  );
  const rms = (x: string, p: string) => {
    const ms = op("ReduceMean", [op("Pow", [x, c(`${p}.two`, 2)], `${p}/Pow`)], `${p}/ReduceMean`, {
      axes: [-1],
    });
    const r = op("Div", [
      c(`${p}.one`, 1),
      op("Sqrt", [op("Add", [ms, c(`${p}.eps`, 1e-6)], `${p}/Add`)], `${p}/Sqrt`),
    ], `${p}/Div`);
    return op("Mul", [w(`${p}.w`, [D]), op("Mul", [x, r], `${p}/Mul`)], `${p}/Mul_1`);
  };
  for (let l = 0; l < L; l++) {
    const p = `/model/layers.${l}`;
    const a = op(
      "MatMul",
      [rms(x, `${p}/input_layernorm`), w(`l${l}.o`, [D, D])],
      `${p}/self_attn/o_proj/MatMul`,
    );
    const mid = op("Add", [x, a], `${p}/Add`);
    const h = rms(mid, `${p}/post_attention_layernorm`);
    const gate = op("MatMul", [h, w(`l${l}.g`, [D, 3 * D])], `${p}/mlp/gate_proj/MatMul`);
    const up = op("MatMul", [h, w(`l${l}.u`, [D, 3 * D])], `${p}/mlp/up_proj/MatMul`);
    const silu = op(
      "Mul",
      [gate, op("Sigmoid", [gate], `${p}/mlp/act_fn/Sigmoid`)],
      `${p}/mlp/act_fn/Mul`,
    );
    const down = op(
      "MatMul",
      [op("Mul", [silu, up], `${p}/mlp/Mul`), w(`l${l}.d`, [3 * D, D])],
      `${p}/mlp/down_proj/MatMul`,
    );
    x = op("Add", [mid, down], `${p}/Add_1`);
  }
  nodes.push(
    makeNode(
      "MatMul",
      [rms(x, "/model/norm"), w("lm_head", [D, V])],
      ["logits"],
      {},
      "/lm_head/MatMul",
    ),
  );
  return makeModel({
    nodes,
    initializers: inits,
    inputs: [toValueInfo("input_ids", { elemType: DataType.INT64, dims: ["batch", "seq"] })],
    outputs: [toValueInfo("logits", { elemType: DataType.FLOAT, dims: ["batch", "seq", V] })],
  });
}

async function shapesMatchOrt(model: ModelProto, rng: Rng) {
  const B = 1 + rng.int(3), T = 2 + rng.int(CTX - 2);
  const shapes = inferShapes(model);
  const m = cloneModel(model);
  const names = m.graph!.node!.flatMap((n) => n.output!);
  // Each tensor is read through an Identity copy: ORT web fails to return a Range output that a
  // Gather also reads ("Reading data from non-tensor typed value").
  m.graph!.node = [...m.graph!.node!, ...names.map((n) => makeNode("Identity", [n], [`${n}#`]))];
  m.graph!.output = names.map((name) => onnx.ValueInfoProto.create({ name: `${name}#` }));
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
  const out = await runWasm(m, { input_ids: { data: ids, dims: [B, T] } });
  const sub = (d: number | string) => (d === "batch" ? B : d === "seq" ? T : d);
  for (const name of names) {
    const s = shapes.get(name);
    assert(s, `no shape for ${name}`);
    assert(!s.dims.some(isUnknownDim), `${name}: unknown dims [${s.dims}]`);
    assertEquals(s.dims.map(sub), out[`${name}#`].dims, name);
  }
}

Deno.test("hooks: GPT-2-style graph lists embed, resid_mid and resid_post per layer", async () => {
  const rng = freshRng("gpt2-hooks");
  const model = gpt2(rng);
  await shapesMatchOrt(model, rng);
  const hooks = listHookPoints(model);
  assertEquals(hooks.map((h) => [h.name, h.layer]), [
    ["/transformer/Add_output_0", undefined],
    ["/transformer/h.0/Add_output_0", 0],
    ["/transformer/h.0/Add_1_output_0", 0],
    ["/transformer/h.1/Add_output_0", 1],
    ["/transformer/h.1/Add_1_output_0", 1],
  ]);
  for (const h of hooks) assertEquals(h.dims, ["batch", "seq", D]);
  assertEquals(resolveHook(model, "resid_post:0"), "/transformer/h.0/Add_1_output_0");
  assertEquals(resolveHook(model, "resid_pre:1"), "/transformer/h.0/Add_1_output_0");
  // Positions are computed before the first hook, so the suffixes read only the hook.
  const suf = suffix(model, "resid_post:0");
  assertEquals(suf.graph!.input!.map((i) => i.name), ["/transformer/h.0/Add_1_output_0"]);
  const sufMid = suffix(model, "/transformer/Add_output_0");
  assertEquals(sufMid.graph!.input!.length, 1);
});

Deno.test("hooks: Llama-style graph (RMSNorm, SiLU) names /model/layers.i", async () => {
  const rng = freshRng("llama-hooks");
  const model = llama(rng);
  await shapesMatchOrt(model, rng);
  const hooks = listHookPoints(model);
  assertEquals(hooks.map((h) => h.name), [
    "/model/embed_tokens/Gather_output_0",
    "/model/layers.0/Add_output_0",
    "/model/layers.0/Add_1_output_0",
    "/model/layers.1/Add_output_0",
    "/model/layers.1/Add_1_output_0",
  ]);
  assertEquals(resolveHook(model, "resid_post:1"), "/model/layers.1/Add_1_output_0");
});
