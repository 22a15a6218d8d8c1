// TransformerLens hook names (blocks.L.hook_resid_pre|mid|post) found by structure on GPT-2
// (sequential), GPT-NeoX (parallel residual: no mid) and Llama exports; an elementwise x + c·x³
// on the stream is not a residual add.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { makeModel, makeNode } from "../../lm/graph.ts";
import { listHookPoints, resolveHook } from "../../lm/hooks.ts";
import { loadLm } from "../../lm/load.ts";
import { DataType, makeTensor } from "../../lm/onnx.ts";
import { toValueInfo } from "../../lm/shapes.ts";
import { freshRng } from "../util/rand.ts";

const DIR = new URL("../fixtures/hf/", import.meta.url).pathname;

async function fixture(name: string) {
  try {
    return await loadLm(`${DIR}${name}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined; // fixtures not generated here
    throw e;
  }
}

const SEQUENTIAL = [
  { file: "gpt2.onnx", embed: "/transformer/Add_output_0", block: "/transformer/h.{}/" },
  { file: "llama.onnx", embed: "/model/embed_tokens/Gather_output_0", block: "/model/layers.{}/" },
];

for (const c of SEQUENTIAL) {
  Deno.test(`hooks: TransformerLens names on ${c.file} (sequential residual)`, async () => {
    const lm = await fixture(c.file);
    if (!lm) return;
    const b = (l: number, t: string) => `${c.block.replace("{}", String(l))}${t}_output_0`;
    assertEquals(lm.hooks.map((h) => [h.name, h.tlNames]), [
      [c.embed, ["blocks.0.hook_resid_pre"]],
      [b(0, "Add"), ["blocks.0.hook_resid_mid"]],
      [b(0, "Add_1"), ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"]],
      [b(1, "Add"), ["blocks.1.hook_resid_mid"]],
      [b(1, "Add_1"), ["blocks.1.hook_resid_post"]],
    ]);
    assertEquals(resolveHook(lm.model, "blocks.1.hook_resid_pre"), b(0, "Add_1"));
    assertEquals(resolveHook(lm.model, "blocks.1.hook_resid_mid"), b(1, "Add"));
    assertEquals(resolveHook(lm.model, "resid_post:1"), b(1, "Add_1"));
    assertEquals(resolveHook(lm.model, "resid_pre:0"), c.embed);
  });
}

Deno.test("hooks: NeoX's parallel residual has pre/post but no mid, with the reason", async () => {
  const lm = await fixture("neox.onnx");
  if (!lm) return;
  assertEquals(lm.hooks.map((h) => h.tlNames), [
    ["blocks.0.hook_resid_pre"],
    ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"],
    ["blocks.1.hook_resid_post"],
  ]);
  assertEquals(resolveHook(lm.model, "blocks.0.hook_resid_post"), lm.hooks[1].name);
  const e = assertThrows(() => resolveHook(lm.model, "blocks.0.hook_resid_mid"));
  assert(e.message.includes("parallel"), e.message);
  const other = assertThrows(() => resolveHook(lm.model, "blocks.0.hook_attn_out"));
  assert(other.message.includes("hook_resid_post") && !other.message.includes("\n"));
  const far = assertThrows(() => resolveHook(lm.model, "blocks.9.hook_resid_post"));
  assert(far.message.includes("2 blocks"), far.message);
});

Deno.test("hooks: an elementwise x + c·x³ on the stream is not a residual add", () => {
  // x = embed; y = x + 0.044715·x³ comes first in graph order; z = y + MatMul(x, W) is the
  // residual add. Only z's add (with a projection in its branch) continues the stream.
  const rng = freshRng("hooks cube");
  const D = 6;
  const m = makeModel({
    nodes: [
      makeNode("Gather", ["wte", "input_ids"], ["x"], {}, "/embed/Gather"),
      makeNode("Pow", ["x", "three"], ["x3"], {}, "/h.0/mlp/Pow"),
      makeNode("Mul", ["x3", "c"], ["cx3"], {}, "/h.0/mlp/Mul"),
      makeNode("Add", ["x", "cx3"], ["y"], {}, "/h.0/mlp/Add"),
      makeNode("MatMul", ["y", "w"], ["proj"], {}, "/h.0/mlp/MatMul"),
      makeNode("Add", ["x", "proj"], ["z"], {}, "/h.0/Add"),
      makeNode("MatMul", ["z", "wout"], ["logits"], {}, "/lm_head/MatMul"),
    ],
    initializers: [
      makeTensor("wte", rng.normals(5 * D), [5, D]),
      makeTensor("w", rng.normals(D * D), [D, D]),
      makeTensor("wout", rng.normals(D * 5), [D, 5]),
      makeTensor("three", Float32Array.of(3), []),
      makeTensor("c", Float32Array.of(0.044715), []),
    ],
    inputs: [toValueInfo("input_ids", { elemType: DataType.INT64, dims: ["b", "t"] })],
    outputs: [toValueInfo("logits", { elemType: DataType.FLOAT, dims: ["b", "t", 5] })],
  });
  assertEquals(listHookPoints(m).map((h) => h.name), ["x", "z"]);
  assertEquals(resolveHook(m, "resid_post:0"), "z");
  assertEquals(resolveHook(m, "blocks.0.hook_resid_post"), "z");
});
