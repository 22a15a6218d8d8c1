import { assert, assertEquals, assertGreater, assertLess, assertThrows } from "@std/assert";
import { makeModel, makeNode } from "../../lm/graph.ts";
import { insertLora } from "../../lm/lora.ts";
import { DataType, makeTensor } from "../../lm/onnx.ts";
import { toValueInfo } from "../../lm/shapes.ts";
import { freshRng, relError } from "../util/rand.ts";
import { loadTiny, runWasm } from "./fixture.ts";

function matmul(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number) {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * m + j];
      out[i * m + j] = s;
    }
  }
  return out;
}

Deno.test("LoRA on a two-layer graph: B = 0 is a no-op, random B matches a float64 reference", async () => {
  const rng = freshRng("lora");
  const N = 3 + rng.int(4), D = 4 + rng.int(5), H = 3 + rng.int(6), r = 1 + rng.int(3);
  const alpha = 0.5 + 4 * rng.uniform();
  const W0 = rng.normals(D * H), W1 = rng.normals(H * D);
  const model = makeModel({
    nodes: [
      makeNode("MatMul", ["x", "layers.0.proj.weight"], ["h"], {}, "/layers.0/proj/MatMul"),
      makeNode("Tanh", ["h"], ["t"], {}, "/layers.0/Tanh"),
      makeNode("MatMul", ["t", "layers.1.proj.weight"], ["y"], {}, "/layers.1/proj/MatMul"),
    ],
    inputs: [toValueInfo("x", { elemType: DataType.FLOAT, dims: [N, D] })],
    outputs: [toValueInfo("y", { elemType: DataType.FLOAT, dims: [N, D] })],
    initializers: [
      makeTensor("layers.0.proj.weight", W0, [D, H]),
      makeTensor("layers.1.proj.weight", W1, [H, D]),
    ],
  });
  const x = rng.normals(N * D);
  const { model: lora, adapters } = insertLora(model, {
    match: /proj/,
    layers: [1, 1],
    rank: r,
    alpha,
  });
  assertEquals(adapters.length, 1);
  const ad = adapters[0];
  assertEquals([ad.name, ad.weight, ad.dIn, ad.dOut], [
    "/layers.1/proj/MatMul",
    "layers.1.proj.weight",
    H,
    D,
  ]);
  assertEquals(model.graph!.node!.length, 3, "the input model is not edited");

  const A = rng.normals(H * r);
  const base = await runWasm(model, { x: { data: x, dims: [N, D] } });
  const zero = await runWasm(lora, {
    x: { data: x, dims: [N, D] },
    [ad.A]: { data: A, dims: [H, r] },
    [ad.B]: { data: new Float32Array(r * D), dims: [r, D] },
  });
  assertEquals(zero.y.data, base.y.data);

  const B = rng.normals(r * D);
  const out = await runWasm(lora, {
    x: { data: x, dims: [N, D] },
    [ad.A]: { data: A, dims: [H, r] },
    [ad.B]: { data: B, dims: [r, D] },
  });
  const t = matmul(x, W0, N, D, H).map(Math.tanh);
  const want = matmul(t, W1, N, H, D);
  const delta = matmul(matmul(t, A, N, H, r), B, N, r, D);
  for (let i = 0; i < want.length; i++) want[i] += delta[i] * alpha / r;
  assertLess(relError(out.y.data as Float32Array, want), 1e-5);
  assertGreater(relError(out.y.data as Float32Array, base.y.data as Float32Array), 1e-3);
});

Deno.test("LoRA on tiny-neox: layer range and name match pick the adapters; B = 0 is a no-op", async () => {
  const model = await loadTiny();
  const rng = freshRng("lora-neox");
  const { model: lora, adapters } = insertLora(model, {
    match: /qkv|fc_in/,
    layers: [1, 2],
    rank: 4,
    alpha: 8,
  });
  assertEquals(adapters.map((a) => a.name), [
    "/blocks.1/qkv/MatMul",
    "/blocks.1/fc_in/MatMul",
    "/blocks.2/qkv/MatMul",
    "/blocks.2/fc_in/MatMul",
  ]);
  assertEquals(adapters.map((a) => [a.dIn, a.dOut]), [[128, 384], [128, 512], [128, 384], [
    128,
    512,
  ]]);
  const B = 2, T = 9;
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(256)));
  const feeds = (zeroB: boolean) =>
    Object.fromEntries([
      ["input_ids", { data: ids, dims: [B, T] }],
      ...adapters.flatMap((a) => [
        [a.A, { data: rng.normals(a.dIn * 4, 0.1), dims: [a.dIn, 4] }],
        [a.B, {
          data: zeroB ? new Float32Array(4 * a.dOut) : rng.normals(4 * a.dOut, 0.1),
          dims: [4, a.dOut],
        }],
      ]),
    ]);
  const base = await runWasm(model, { input_ids: { data: ids, dims: [B, T] } });
  const zero = await runWasm(lora, feeds(true));
  assertEquals(zero.logits.data, base.logits.data);
  const moved = await runWasm(lora, feeds(false));
  assertGreater(
    relError(moved.logits.data as Float32Array, base.logits.data as Float32Array),
    1e-3,
  );
});

Deno.test("LoRA: no match is an error listing the weight MatMuls", async () => {
  const model = await loadTiny();
  const e = assertThrows(() => insertLora(model, { match: /nothing/, rank: 2, alpha: 2 }));
  assert(e.message.includes("/blocks.0/qkv/MatMul"), e.message);
  const e2 = assertThrows(() =>
    insertLora(model, { match: /qkv/, layers: [7, 9], rank: 2, alpha: 2 })
  );
  assert(e2.message.includes("layers 7..9"), e2.message);
});
