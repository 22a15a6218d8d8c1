import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { prefix, suffix, tap } from "../../lm/surgery.ts";
import { makeModel, makeNode } from "../../lm/graph.ts";
import { DataType, makeTensor } from "../../lm/onnx.ts";
import { toValueInfo } from "../../lm/shapes.ts";
import { freshRng, relError } from "../util/rand.ts";
import { HOOK, loadReference, loadTiny, runWasm } from "./fixture.ts";

Deno.test("tap: the hook output is the reference resid, logits are logits_clean", async () => {
  const model = await loadTiny();
  const ref = await loadReference();
  const before = JSON.stringify(model.graph!.output);
  const tapped = tap(model, "resid_post:1", { logProbs: true });
  assertEquals(JSON.stringify(model.graph!.output), before, "tap must not edit its input");
  assertEquals(tapped.graph!.output!.map((o) => o.name), ["logits", HOOK, "logprobs"]);
  const out = await runWasm(tapped, { input_ids: { data: ref.inputIds, dims: [ref.B, ref.T] } });
  assertEquals(out[HOOK].dims, [ref.B, ref.T, ref.D]);
  assertLess(relError(out[HOOK].data as Float32Array, ref.resid), 1e-5);
  assertLess(relError(out.logits.data as Float32Array, ref.logitsClean), 1e-5);
  // logprobs: each row's exp sums to 1 and differs from logits by a per-row constant.
  const lp = out.logprobs.data as Float32Array, lg = out.logits.data as Float32Array;
  for (const row of [0, 17, ref.B * ref.T - 1]) {
    let s = 0;
    for (let v = 0; v < ref.V; v++) s += Math.exp(lp[row * ref.V + v]);
    assertLess(Math.abs(s - 1), 1e-4);
    const c = lg[row * ref.V] - lp[row * ref.V];
    for (let v = 0; v < ref.V; v++) {
      assertLess(Math.abs(lg[row * ref.V + v] - lp[row * ref.V + v] - c), 1e-3);
    }
  }
});

Deno.test("prefix: outputs only the hook (= resid) and stops at it", async () => {
  const model = await loadTiny();
  const ref = await loadReference();
  const pre = prefix(model, HOOK);
  assertEquals(pre.graph!.output!.map((o) => o.name), [HOOK]);
  const names = new Set(pre.graph!.node!.map((n) => n.name));
  assert(!names.has("/blocks.2/Add_2") && !names.has("/unembed/MatMul"));
  assert(pre.graph!.node!.length < model.graph!.node!.length / 2 + 20);
  const out = await runWasm(pre, { input_ids: { data: ref.inputIds, dims: [ref.B, ref.T] } });
  assertLess(relError(out[HOOK].data as Float32Array, ref.resid), 1e-5);
});

Deno.test("suffix: fed recon gives logits_spliced, fed resid gives logits_clean", async () => {
  const model = await loadTiny();
  const ref = await loadReference();
  const suf = suffix(model, "resid_post:1");
  const inputs = suf.graph!.input!.map((i) => i.name);
  assertEquals(inputs, [HOOK]); // tiny-neox's suffix reads no original input
  const dims = suf.graph!.input![0].type!.tensorType!.shape!.dim!.map((d) =>
    d.dimParam || Number(d.dimValue)
  );
  assertEquals(dims, ["batch", "seq", 128]);
  assert(!suf.graph!.node!.some((n) => n.name === "/blocks.1/Add_2" || n.name === "/embed/Gather"));
  const d = [ref.B, ref.T, ref.D];
  const spliced = await runWasm(suf, { [HOOK]: { data: ref.recon, dims: d } });
  assertLess(relError(spliced.logits.data as Float32Array, ref.logitsSpliced), 1e-5);
  const clean = await runWasm(suf, { [HOOK]: { data: ref.resid, dims: d } });
  assertLess(relError(clean.logits.data as Float32Array, ref.logitsClean), 1e-5);
});

Deno.test("surgery: an unknown hook is an error naming it and listing hook points", async () => {
  const model = await loadTiny();
  for (const f of [tap, prefix, suffix]) {
    const e = assertThrows(() => f(model, "/blocks.9/nope"));
    assert(e.message.includes("/blocks.9/nope"), e.message);
    assert(e.message.includes("/blocks.3/Add_2_output_0"), e.message);
  }
});

Deno.test("suffix keeps original inputs that the suffix still reads", async () => {
  const rng = freshRng("suffix-inputs");
  const V = 5, D = 3, B = 2, T = 4;
  const E = rng.normals(V * D), U = rng.normals(D * V);
  const one = makeTensor("one", BigInt64Array.of(1n), []);
  const model = makeModel({
    nodes: [
      makeNode("Gather", ["E", "input_ids"], ["emb"], {}, "/embed/Gather"),
      makeNode("Shape", ["input_ids"], ["shape"]),
      makeNode("Gather", ["shape", "one"], ["seq"]),
      makeNode("Cast", ["seq"], ["seqf"], { to: DataType.FLOAT }),
      makeNode("Mul", ["emb", "seqf"], ["scaled"]),
      makeNode("MatMul", ["scaled", "U"], ["logits"]),
    ],
    initializers: [makeTensor("E", E, [V, D]), makeTensor("U", U, [D, V]), one],
    inputs: [toValueInfo("input_ids", { elemType: DataType.INT64, dims: ["batch", "seq"] })],
    outputs: [toValueInfo("logits", { elemType: DataType.FLOAT, dims: ["batch", "seq", V] })],
  });
  const suf = suffix(model, "emb");
  assertEquals(suf.graph!.input!.map((i) => i.name), ["emb", "input_ids"]);
  assert(!suf.graph!.initializer!.some((t) => t.name === "E"), "the embedding is dropped");
  const h = rng.normals(B * T * D);
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
  const out = await runWasm(suf, {
    emb: { data: h, dims: [B, T, D] },
    input_ids: { data: ids, dims: [B, T] },
  });
  const want = new Float64Array(B * T * V);
  for (let r = 0; r < B * T; r++) {
    for (let v = 0; v < V; v++) {
      for (let d = 0; d < D; d++) want[r * V + v] += h[r * D + d] * T * U[d * V + v];
    }
  }
  assertLess(relError(out.logits.data as Float32Array, want), 1e-6);
});
