// canonicalLm per signature pattern (past inputs, present outputs, merged-decoder If, fp16/bf16
// initializers, fully float16 models, cache_position, unknown inputs) on graphs built here and on
// the Hugging-Face-shaped fixtures; lmFeeds / feedsFor.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { makeModel, makeNode } from "../../lm/graph.ts";
import {
  DataType,
  loadModel,
  makeTensor,
  type ModelProto,
  onnx,
  type TensorProto,
  tensorToArray,
} from "../../lm/onnx.ts";
import { toValueInfo } from "../../lm/shapes.ts";
import {
  canonicalLm,
  feedsFor,
  lmFeeds,
  LmSignatureError,
  positionIdsFromMask,
} from "../../lm/signature.ts";
import { freshRng, type Rng } from "../util/rand.ts";
import { runWasm } from "./fixture.ts";

const V = 7, D = 8, H = 2, DH = 4;
const HF = new URL("../fixtures/hf/", import.meta.url).pathname;

const i64 = (name: string, v: number[], dims = [v.length]) =>
  makeTensor(name, BigInt64Array.from(v.map(BigInt)), dims);
const vi = (name: string, elemType: number, dims: (number | string)[]) =>
  toValueInfo(name, { elemType, dims });

/**
 * A toy LM with Optimum's with-past signature: logits = x·W + (Σ mask) + past length +
 * mean_{h,d}(concat(past_k, k)), and present.0.key/value outputs.
 */
function toyWithPast(rng: Rng): ModelProto {
  const w = (name: string, dims: number[]) =>
    makeTensor(name, rng.normals(dims.reduce((a, b) => a * b, 1), 0.5), dims);
  const n = makeNode;
  const nodes = [
    n("Gather", ["wte", "input_ids"], ["emb"]),
    n("Gather", ["wpe", "position_ids"], ["pos"]),
    n("Add", ["emb", "pos"], ["x"]),
    n("MatMul", ["x", "wk"], ["k2"]),
    n("Reshape", ["k2", "heads"], ["k3"]),
    n("Transpose", ["k3"], ["k"], { perm: [0, 2, 1, 3] }),
    n("Concat", ["past_key_values.0.key", "k"], ["present.0.key"], { axis: -2 }),
    n("Concat", ["past_key_values.0.value", "k"], ["present.0.value"], { axis: 2 }),
    n("ReduceMean", ["present.0.key"], ["km"], { axes: [1, 3], keepdims: 0 }),
    n("Unsqueeze", ["km", "last"], ["km3"]),
    n("Shape", ["past_key_values.0.key"], ["pshape"]),
    n("Gather", ["pshape", "two"], ["plen"], { axis: 0 }),
    n("Cast", ["plen"], ["plenf"], { to: DataType.FLOAT }),
    n("Cast", ["attention_mask"], ["maskf"], { to: DataType.FLOAT }),
    n("ReduceSum", ["maskf", "one"], ["msum"], { keepdims: 1 }),
    n("Unsqueeze", ["msum", "last"], ["msum3"]),
    n("MatMul", ["x", "wout"], ["xw"]),
    n("Add", ["xw", "km3"], ["a1"]),
    n("Add", ["a1", "msum3"], ["a2"]),
    n("Add", ["a2", "plenf"], ["logits"]),
  ];
  const past = (name: string) =>
    vi(name, DataType.FLOAT, ["batch_size", H, "past_sequence_length", DH]);
  return makeModel({
    nodes,
    initializers: [
      w("wte", [V, D]),
      w("wpe", [16, D]),
      w("wk", [D, H * DH]),
      w("wout", [D, V]),
      i64("heads", [0, 0, H, DH]),
      i64("last", [-1]),
      i64("one", [1]),
      i64("two", [2], []),
    ],
    inputs: [
      vi("input_ids", DataType.INT64, ["batch_size", "sequence_length"]),
      vi("attention_mask", DataType.INT64, [
        "batch_size",
        "past_sequence_length + sequence_length",
      ]),
      vi("position_ids", DataType.INT64, ["batch_size", "sequence_length"]),
      past("past_key_values.0.key"),
      past("past_key_values.0.value"),
    ],
    outputs: [
      vi("logits", DataType.FLOAT, ["batch_size", "sequence_length", V]),
      past("present.0.key"),
      past("present.0.value"),
    ],
    opset: 14,
  });
}

function randomIds(rng: Rng, B: number, T: number): BigInt64Array {
  return BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
}

/** The raw with-past model run with a zero-length past. */
async function runRawEmptyPast(model: ModelProto, ids: BigInt64Array, B: number, T: number) {
  const pos = BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % T));
  const empty = { data: new Float32Array(0), dims: [B, H, 0, DH] };
  const feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }> = {
    input_ids: { data: ids, dims: [B, T] },
    attention_mask: { data: new BigInt64Array(B * T).fill(1n), dims: [B, T] },
    position_ids: { data: pos, dims: [B, T] },
  };
  for (const v of model.graph!.input!) {
    if (v.name!.startsWith("past_key_values.")) feeds[v.name!] = empty;
  }
  return (await runWasm(model, feeds)).logits;
}

async function runCanonical(model: ModelProto, ids: BigInt64Array, B: number, T: number) {
  const f = lmFeeds(
    model.graph!.input!.map((v) => v.name!),
    ids,
    B,
    T,
  );
  const feeds = Object.fromEntries(
    Object.entries(f).map(([k, t]) => [k, { data: t.data as BigInt64Array, dims: [...t.dims] }]),
  );
  return (await runWasm(model, feeds)).logits;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("signature: past inputs become an empty past, present outputs are pruned", async () => {
  const rng = freshRng("signature past");
  const raw = toyWithPast(rng);
  const { model, signature } = canonicalLm(raw);
  const g = model.graph!;
  assertEquals(g.input!.map((v) => v.name), ["input_ids", "attention_mask", "position_ids"]);
  assertEquals(g.output!.map((v) => v.name), ["logits"]);
  assertEquals(signature.attentionMask, "attention_mask");
  assertEquals(signature.positionIds, "position_ids");
  assert(
    signature.recognised.includes("past_key_values ×2 (empty past)"),
    signature.recognised.join("; "),
  );
  assert(signature.recognised.includes("present ×2 outputs pruned"));
  // The Concat that feeds compute is rewired to the new keys; the one only present.* read is gone.
  assertEquals(g.node!.filter((n) => n.opType === "Concat" && n.input!.length === 2).length, 1);
  assert(!g.node!.some((n) => n.input!.includes("past_key_values.0.value")));
  // Node names are unique and non-empty (builders downstream prefix them; ORT wants them unique).
  const names = g.node!.map((n) => n.name ?? "");
  assert(names.every((x) => x) && new Set(names).size === names.length, names.join(", "));
  // The Shape reader gets a real [B, H, 0, DH] tensor.
  assert(g.node!.some((n) => n.opType === "ConstantOfShape"));
  // The mask's declared dims are now the ids' dims (splice feeds [B, T]).
  const mdims = g.input![1].type!.tensorType!.shape!.dim!.map((d) => d.dimParam);
  assertEquals(mdims, ["batch_size", "sequence_length"]);
  const B = 1 + rng.int(3), T = 2 + rng.int(8);
  const ids = randomIds(rng, B, T);
  const want = await runRawEmptyPast(raw, ids, B, T);
  const got = await runCanonical(model, ids, B, T);
  assertEquals(got.dims, [B, T, V]);
  assert(maxAbsDiff(got.data as Float32Array, want.data as Float32Array) < 1e-6);
});

Deno.test("signature: a merged decoder's If on use_cache_branch becomes its else branch", async () => {
  const rng = freshRng("signature merged");
  const base = toyWithPast(rng);
  // then-branch: logits·2 (the with-cache graph stand-in); else-branch: the toy's logits.
  const bg = base.graph!;
  const elseBranch = onnx.GraphProto.create({
    name: "no_cache",
    node: bg.node!,
    initializer: [],
    input: [],
    output: [vi("logits", DataType.FLOAT, ["batch_size", "sequence_length", V])],
  });
  const thenBranch = onnx.GraphProto.create({
    name: "with_cache",
    node: [
      makeNode("Gather", ["wte", "input_ids"], ["t_emb"]),
      makeNode("Add", ["t_emb", "t_emb"], ["t_logits0"]),
      makeNode("MatMul", ["t_logits0", "wout"], ["t_logits"]),
    ],
    output: [vi("t_logits", DataType.FLOAT, ["batch_size", "sequence_length", V])],
  });
  const merged = makeModel({
    nodes: [
      makeNode("If", ["use_cache_branch"], ["logits"], {
        then_branch: thenBranch,
        else_branch: elseBranch,
      }, "optimum::if"),
    ],
    initializers: bg.initializer!,
    inputs: [...bg.input!, vi("use_cache_branch", DataType.BOOL, [1])],
    outputs: [bg.output![0]],
    opset: 14,
  });
  const { model, signature } = canonicalLm(merged);
  assert(signature.recognised.some((r) => r.startsWith("merged decoder: If on use_cache_branch")));
  assert(!model.graph!.node!.some((n) => n.opType === "If"));
  assertEquals(model.graph!.input!.map((v) => v.name), [
    "input_ids",
    "attention_mask",
    "position_ids",
  ]);
  const B = 2, T = 3 + rng.int(5);
  const ids = randomIds(rng, B, T);
  const want = await runRawEmptyPast(base, ids, B, T);
  const got = await runCanonical(model, ids, B, T);
  assert(maxAbsDiff(got.data as Float32Array, want.data as Float32Array) < 1e-6);
});

Deno.test("signature: the HF fixtures' merged decoder has no If and no use_cache_branch", async () => {
  const path = `${HF}gpt2-merged.onnx`;
  try {
    await Deno.stat(path);
  } catch {
    return; // fixtures not generated in this checkout
  }
  const { model } = canonicalLm(await loadModel(path));
  assert(!model.graph!.node!.some((n) => n.opType === "If"));
  assert(!model.graph!.input!.some((v) => v.name === "use_cache_branch"));
});

/** Weights of `m` stored as `dt` (FLOAT16 or BFLOAT16 bits) with a Cast to FLOAT after each. */
function halfWeights(m: ModelProto, dt: number, names: string[]): ModelProto {
  const g = m.graph!;
  const casts: ReturnType<typeof makeNode>[] = [];
  g.initializer = g.initializer!.map((t) => {
    if (!names.includes(t.name!)) return t;
    const f = tensorToArray(t) as Float32Array;
    const bits = new Uint16Array(f.length);
    const u = new Uint32Array(Float32Array.from(f).buffer);
    for (let i = 0; i < f.length; i++) {
      // bf16: truncation; fp16: via a float16 round trip of small values (|x| < 4 here).
      bits[i] = dt === DataType.BFLOAT16 ? u[i] >>> 16 : toHalfBits(f[i]);
    }
    casts.push(makeNode("Cast", [`${t.name}_h`], [t.name!], { to: DataType.FLOAT }));
    return makeTensor(`${t.name}_h`, bits, [...t.dims!.map(Number)], dt);
  });
  g.node = [...casts, ...g.node!];
  return m;
}

function toHalfBits(x: number): number {
  // Round-to-nearest float16 for normal numbers in range (test data only).
  const s = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -14) return s | Math.round(a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  const m = Math.round((a / 2 ** e - 1) * 1024);
  return m === 1024 ? s | ((e + 16) << 10) : s | ((e + 15) << 10) | m;
}

function halfValue(bits: number, dt: number): number {
  if (dt === DataType.BFLOAT16) {
    return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
  }
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, f = bits & 0x3ff;
  return e === 0 ? s * f * 2 ** -24 : s * (1 + f / 1024) * 2 ** (e - 15);
}

for (const dt of [DataType.FLOAT16, DataType.BFLOAT16]) {
  Deno.test(`signature: ${DataType[dt]} initializers become float32 exactly`, async () => {
    const rng = freshRng(`signature ${DataType[dt]}`);
    const raw = halfWeights(toyWithPast(rng), dt, ["wte", "wout", "wk"]);
    const halves = new Map<string, TensorProto>(
      raw.graph!.initializer!.filter((t) => t.dataType === dt).map((t) => [t.name!, t]),
    );
    const { model, signature } = canonicalLm(raw);
    assert(
      signature.recognised.includes("fp16 initializers → float32 (3)"),
      signature.recognised.join("; "),
    );
    for (const t of model.graph!.initializer!) {
      assert(t.dataType !== dt, `${t.name} is still ${DataType[dt]}`);
      const h = halves.get(t.name!);
      if (!h) continue;
      const bits = tensorToArray(h) as Uint16Array;
      const f = tensorToArray(t) as Float32Array;
      for (let i = 0; i < bits.length; i++) assertEquals(f[i], halfValue(bits[i], dt));
    }
    // ORT runs the raw model (Cast from float16) and the converted one alike; ORT web has no
    // Cast from bfloat16, so there the exact values above are the check.
    if (dt === DataType.BFLOAT16) return;
    const B = 2, T = 4;
    const ids = randomIds(rng, B, T);
    const want = await runRawEmptyPast(raw, ids, B, T);
    const got = await runCanonical(model, ids, B, T);
    assert(maxAbsDiff(got.data as Float32Array, want.data as Float32Array) < 1e-6);
  });
}

Deno.test("signature: float16 special values convert exactly", () => {
  const bits = Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x8400, 0x0000);
  const want = [1, -2, 65504, 2 ** -24, 0.333251953125, -(2 ** -14), 0];
  const m = makeModel({
    nodes: [
      makeNode("Cast", ["w_h"], ["w"], { to: DataType.FLOAT }),
      makeNode("Gather", ["w", "input_ids"], ["logits"]),
    ],
    initializers: [makeTensor("w_h", bits, [7, 1], DataType.FLOAT16)],
    inputs: [vi("input_ids", DataType.INT64, ["b", "t"])],
    outputs: [vi("logits", DataType.FLOAT, ["b", "t", 1])],
  });
  const { model } = canonicalLm(m);
  assertEquals([...tensorToArray(model.graph!.initializer![0]) as Float32Array], want);
});

Deno.test("signature: a fully float16 export becomes float32 throughout", async () => {
  const path = `${HF}gpt2-with-past-fp16.onnx`;
  try {
    await Deno.stat(path);
  } catch {
    return;
  }
  const { model, signature } = canonicalLm(await loadModel(path));
  assert(signature.recognised.includes("float16 model → float32 compute (weights as rounded)"));
  const half = new Set<number>([DataType.FLOAT16, DataType.BFLOAT16]);
  const g = model.graph!;
  for (const t of g.initializer!) assert(!half.has(t.dataType!), t.name!);
  for (const v of [...g.input!, ...g.output!, ...(g.valueInfo ?? [])]) {
    assert(!half.has(v.type!.tensorType!.elemType!), v.name!);
  }
  for (const n of g.node!) {
    for (const a of n.attribute!) {
      if (a.t) assert(!half.has(a.t.dataType!), `${n.name} ${a.name}`);
      if (a.name === "to") assert(!half.has(Number(a.i)), `${n.name} casts to float16`);
    }
  }
});

Deno.test("signature: cache_position is computed in the graph as arange(seq)", async () => {
  const m = makeModel({
    nodes: [
      makeNode("Cast", ["cache_position"], ["cpf"], { to: DataType.FLOAT }),
      makeNode("Gather", ["w", "input_ids"], ["e"]),
      makeNode("Unsqueeze", ["cpf", "ax"], ["cp2"]),
      makeNode("Add", ["e", "cp2"], ["logits"]),
    ],
    initializers: [makeTensor("w", new Float32Array(V).fill(0.5), [V, 1]), i64("ax", [-1])],
    inputs: [
      vi("input_ids", DataType.INT64, ["b", "t"]),
      vi("cache_position", DataType.INT64, ["t"]),
    ],
    outputs: [vi("logits", DataType.FLOAT, ["b", "t", 1])],
    opset: 14,
  });
  const { model, signature } = canonicalLm(m);
  assert(signature.recognised.includes("cache_position (arange(seq))"));
  const T = 5;
  const out = await runCanonical(model, new BigInt64Array(2 * T), 2, T);
  assertEquals([...out.data as Float32Array], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4].map((x) => x + 0.5));
});

Deno.test("signature: inputs splice cannot feed are an error naming them", () => {
  const m = toyWithPast(freshRng("signature unknown"));
  m.graph!.input!.push(vi("token_type_ids", DataType.INT64, ["batch_size", "sequence_length"]));
  m.graph!.input!.push(vi("pixel_values", DataType.FLOAT, [1, 3]));
  const e = assertThrows(() => canonicalLm(m), LmSignatureError);
  assert(e.message.includes('"token_type_ids"') && e.message.includes('"pixel_values"'), e.message);
  assert(e.message.includes("attention_mask"), e.message);
  const noIds = makeModel({
    nodes: [makeNode("Identity", ["tokens"], ["logits"])],
    inputs: [vi("tokens", DataType.FLOAT, ["b", "t"]), vi("other", DataType.INT64, ["b"])],
    outputs: [vi("logits", DataType.FLOAT, ["b", "t"])],
  });
  const e2 = assertThrows(() => canonicalLm(noIds), LmSignatureError);
  assert(e2.message.includes("input_ids"), e2.message);
});

Deno.test("signature: a torch.onnx export with one integer input of another name", () => {
  const m = makeModel({
    nodes: [makeNode("Gather", ["w", "ids"], ["out"])],
    initializers: [makeTensor("w", new Float32Array(V * 2), [V, 2])],
    inputs: [vi("ids", DataType.INT64, ["b", "t"])],
    outputs: [vi("out", DataType.FLOAT, ["b", "t", 2])],
  });
  const { model, signature } = canonicalLm(m);
  assertEquals(model.graph!.input!.map((v) => v.name), ["input_ids"]);
  assertEquals(model.graph!.node![0].input, ["w", "input_ids"]);
  assertEquals(signature.logits, "out");
});

Deno.test("lmFeeds: ids, mask (ones or given) and positions as transformers.js", () => {
  const ids = BigInt64Array.from([5n, 6n, 7n, 8n, 1n, 2n, 3n, 4n]);
  const f = lmFeeds(["input_ids", "attention_mask", "position_ids"], ids, 2, 4);
  assertEquals([...f.attention_mask.data as BigInt64Array], new Array(8).fill(1n));
  assertEquals([...f.position_ids.data as BigInt64Array], [0n, 1n, 2n, 3n, 0n, 1n, 2n, 3n]);
  assertEquals(f.input_ids.dims, [2, 4]);
  // Left padding (row 0) and right padding (row 1): padded positions read 1.
  const mask = BigInt64Array.from([0n, 0n, 1n, 1n, 1n, 1n, 1n, 0n]);
  assertEquals([...positionIdsFromMask(mask, 2, 4)], [1n, 1n, 0n, 1n, 0n, 1n, 2n, 1n]);
  const g = lmFeeds(["input_ids"], ids, 2, 4, mask);
  assertEquals(Object.keys(g), ["input_ids"]);
  assertThrows(() => lmFeeds(["input_ids"], ids, 3, 4));
});

Deno.test("feedsFor: fills LM inputs, keeps own tensors, names inputs it cannot feed", () => {
  const rng = freshRng("feedsFor");
  const ids = randomIds(rng, 1, 3);
  const lm = { ids, batch: 1, seq: 3 };
  const hook = lmFeeds(["input_ids"], ids, 1, 3).input_ids;
  const f = feedsFor(["hook", "attention_mask", "input_ids"], { hook }, lm);
  assertEquals(Object.keys(f).sort(), ["attention_mask", "hook", "input_ids"]);
  assert(f.hook === hook);
  const e = assertThrows(
    () => feedsFor(["input_ids", "token_type_ids", "past_key_values.0.key"], {}, lm),
    LmSignatureError,
  );
  assert(e.message.includes('"token_type_ids"') && e.message.includes("past_key_values.0.key"));
});

Deno.test("signature: int32 ids and mask are fed as int64 through a Cast in the graph", async () => {
  const m = makeModel({
    nodes: [
      makeNode("Gather", ["w", "input_ids"], ["e"]),
      makeNode("Cast", ["attention_mask"], ["mf"], { to: DataType.FLOAT }),
      makeNode("Unsqueeze", ["mf", "ax"], ["m3"]),
      makeNode("Mul", ["e", "m3"], ["logits"]),
    ],
    initializers: [
      makeTensor("w", Float32Array.from({ length: V }, (_, i) => i), [V, 1]),
      i64("ax", [-1]),
    ],
    inputs: [
      vi("input_ids", DataType.INT32, ["b", "t"]),
      vi("attention_mask", DataType.INT32, ["b", "t"]),
    ],
    outputs: [vi("logits", DataType.FLOAT, ["b", "t", 1])],
  });
  const { model, signature } = canonicalLm(m);
  assert(signature.recognised.some((r) => r.startsWith("input_ids INT32 → fed as int64")));
  for (const v of model.graph!.input!) assertEquals(v.type!.tensorType!.elemType, DataType.INT64);
  const out = await runCanonical(model, BigInt64Array.from([3n, 1n, 6n]), 1, 3);
  assertEquals([...out.data as Float32Array], [3, 1, 6]);
});
