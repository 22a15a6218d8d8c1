import {
  assert,
  assertEquals,
  assertGreater,
  assertLess,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { getAttr, makeNode } from "../../lm/graph.ts";
import {
  cloneModel,
  DataType,
  decodeModel,
  INT_TYPES,
  loadModel,
  makeTensor,
  onnx,
  saveModel,
  tensorToArray,
  toOrtInput,
} from "../../lm/onnx.ts";
import { ort } from "../../lm/session.ts";
import { freshRng, relError } from "../util/rand.ts";
import { loadReference, loadTiny, runWasm } from "./fixture.ts";

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

Deno.test("save/load with external data: initializers bit-exact, the model runs", async () => {
  const model = await loadTiny();
  const dir = await Deno.makeTempDir({ prefix: "lm-extdata-" });
  try {
    const path = `${dir}/model.onnx`;
    await saveModel(model, path, { externalDataThreshold: 1024 });
    const onDisk = decodeModel(await Deno.readFile(path));
    const ext = onDisk.graph!.initializer!.filter((t) =>
      t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL
    );
    const small = onDisk.graph!.initializer!.filter((t) => t.dataLocation !== 1);
    assertGreater(ext.length, 10);
    assert(small.length > 0, "tensors under the threshold stay inline");
    for (const t of ext) {
      assertEquals(t.externalData!.find((e) => e.key === "location")!.value, "model.onnx.data");
    }
    assertLess((await Deno.stat(path)).size, 200_000);
    assertThrows(() => tensorToArray(ext[0]), Error, "loadModel");

    const back = await loadModel(path);
    const want = new Map(model.graph!.initializer!.map((t) => [t.name, tensorToArray(t)]));
    assertEquals(back.graph!.initializer!.length, want.size);
    for (const t of back.graph!.initializer!) {
      assertEquals(bytesOf(tensorToArray(t)), bytesOf(want.get(t.name)!), t.name!);
    }
    const ref = await loadReference();
    const out = await runWasm(back, {
      input_ids: { data: ref.inputIds, dims: [ref.B, ref.T] },
    });
    assertLess(relError(out.logits.data as Float32Array, ref.logitsClean), 1e-5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadModel: a truncated data file is an error naming the tensor", async () => {
  const rng = freshRng("extdata");
  const w = rng.normals(4096);
  const model = cloneModel(await loadTiny());
  model.graph!.initializer = [makeTensor("w", w, [64, 64])];
  model.graph!.node = [];
  const dir = await Deno.makeTempDir({ prefix: "lm-extdata-" });
  try {
    const path = `${dir}/m.onnx`;
    await saveModel(model, path, { externalDataThreshold: 16 });
    const back = await loadModel(path);
    assertEquals(tensorToArray(back.graph!.initializer![0]), w);
    await Deno.truncate(`${path}.data`, 1000);
    await assertRejects(() => loadModel(path), Error, "tensor w");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tensorToArray reads raw_data and typed fields; makeTensor round-trips", () => {
  const rng = freshRng("tensors");
  const f = rng.normals(6);
  assertEquals(tensorToArray(makeTensor("f", f, [2, 3])), f);
  const d = rng.normals64(5);
  assertEquals(tensorToArray(makeTensor("d", d, [5])), d);
  const i = BigInt64Array.from([1n, -2n, 3n, 2n ** 40n]);
  assertEquals(tensorToArray(makeTensor("i", i, [4])), i);
  const typed = onnx.TensorProto.create({
    name: "t",
    dims: [3],
    dataType: DataType.INT64,
    int64Data: [1, -5, 7],
  });
  assertEquals(tensorToArray(typed), BigInt64Array.from([1n, -5n, 7n]));
  const fl = onnx.TensorProto.create({ dims: [2], dataType: DataType.FLOAT, floatData: [0.5, -2] });
  assertEquals(tensorToArray(fl), Float32Array.from([0.5, -2]));
  // Through an encode/decode cycle (int64 fields come back as Long objects).
  const dec = onnx.TensorProto.decode(onnx.TensorProto.encode(typed).finish());
  assertEquals(tensorToArray(dec), BigInt64Array.from([1n, -5n, 7n]));
  assertThrows(() => makeTensor("bad", f, [4, 2]), Error, "do not fill");
});

Deno.test("cloneModel is deep: edits to the clone leave the original alone", async () => {
  const model = await loadTiny();
  const c = cloneModel(model);
  c.graph!.node![0].input = ["changed"];
  c.graph!.node!.pop();
  c.graph!.output = [];
  assert(model.graph!.node![0].input![0] !== "changed");
  assertEquals(model.graph!.output!.length, 1);
  assertEquals(c.graph!.node!.length, model.graph!.node!.length - 1);
  const n = makeNode("LayerNormalization", ["x"], ["y"], { axis: -1, epsilon: { float: 1 } });
  assertEquals(getAttr(n, "axis"), -1);
  assertEquals(getAttr(n, "epsilon"), 1);
  assertEquals(n.attribute![1].type, onnx.AttributeProto.AttributeType.FLOAT);
});

Deno.test("toOrtInput: ORT runs the model from in-memory external data files", async () => {
  const model = await loadTiny();
  const ref = await loadReference();
  const { bytes, externalData } = toOrtInput(model, { maxFileBytes: 1 << 20 });
  assertGreater(externalData.length, 2); // 3.5 MB of weights cut into ≤ 1 MiB files
  for (const f of externalData) assert(f.data.byteLength <= 1 << 20);
  assertLess(bytes.byteLength, 200_000);
  const s = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"],
    externalData,
  });
  try {
    const out = await s.run({
      input_ids: new ort.Tensor("int64", ref.inputIds, [ref.B, ref.T]),
    });
    assertLess(relError(out.logits.data as Float32Array, ref.logitsClean), 1e-5);
  } finally {
    await s.release();
  }
});

Deno.test("INT_TYPES: every signed and unsigned integer type of the proto, and not BOOL", () => {
  // BOOL is apart: ONNX's arithmetic ops refuse it, and a Cast to BOOL maps non-zero to 1 where a
  // cast to an integer truncates; callers that accept it too name it beside INT_TYPES.
  const names = Object.entries(onnx.TensorProto.DataType).filter(([k]) => isNaN(Number(k)));
  const ints = names.filter(([k]) => /^U?INT\d+$/.test(k)).map(([, v]) => v as number);
  assertEquals(ints.length, 8);
  assertEquals([...INT_TYPES].sort((a, b) => a - b), ints.sort((a, b) => a - b));
  assert(!INT_TYPES.has(DataType.BOOL));
});
