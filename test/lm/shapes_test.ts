import { assert, assertEquals, assertGreater } from "@std/assert";
import { inferShapes, isUnknownDim } from "../../lm/shapes.ts";
import { cloneModel, onnx } from "../../lm/onnx.ts";
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
