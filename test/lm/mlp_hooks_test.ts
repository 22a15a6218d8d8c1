// Transcoder hook pairs found by structure on every exported architecture, checked against the
// module paths the exporters wrote into node names (which the finder never reads).
import { assertEquals, assertThrows } from "@std/assert";
import { producers } from "../../lm/graph.ts";
import { loadLm } from "../../lm/load.ts";
import { mlpHookPairs, resolveMlpHookPair } from "../../lm/mlp_hooks.ts";

const HF = new URL("../fixtures/hf/", import.meta.url).pathname;
const TINY = new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname;

// Per architecture: the node that writes the MLP's input (its norm) and its output, for block L.
const CASES: { file: string; blocks: number; input: RegExp; output: RegExp }[] = [
  ...["gpt2.onnx", "gpt2-merged.onnx", "gpt2-with-past-fp16.onnx"].map((f) => ({
    file: HF + f,
    blocks: 2,
    input: /^\/transformer\/h\.L\/ln_2\//,
    output: /^\/transformer\/h\.L\/mlp\/c_proj\//,
  })),
  ...["neox.onnx", "neox-ext/model.onnx"].map((f) => ({
    file: HF + f,
    blocks: 2,
    input: /^\/gpt_neox\/layers\.L\/post_attention_layernorm\//,
    output: /^\/gpt_neox\/layers\.L\/mlp\/dense_4h_to_h\//,
  })),
  ...["llama.onnx", "llama-with-past-fp16w.onnx"].map((f) => ({
    file: HF + f,
    blocks: 2,
    input: /^\/model\/layers\.L\/post_attention_layernorm\//,
    output: /^\/model\/layers\.L\/mlp\/down_proj\//,
  })),
  { file: TINY, blocks: 4, input: /^\/blocks\.L\/ln2\//, output: /^\/blocks\.L\/fc_out\// },
];

for (const c of CASES) {
  Deno.test(`MLP hook pairs by structure: ${c.file.split("/").slice(-2).join("/")}`, async () => {
    const { model } = await loadLm(c.file);
    const prod = producers(model.graph!);
    const pairs = mlpHookPairs(model);
    assertEquals(pairs.map((p) => p.layer), [...Array(c.blocks).keys()]);
    for (const p of pairs) {
      const at = (re: RegExp) => new RegExp(re.source.replace("L", String(p.layer)));
      const inNode = prod.get(p.input)?.name ?? "", outNode = prod.get(p.output)?.name ?? "";
      assertEquals(at(c.input).test(inNode), true, `block ${p.layer} input from ${inNode}`);
      assertEquals(at(c.output).test(outNode), true, `block ${p.layer} output from ${outNode}`);
      const tl = resolveMlpHookPair(model, {
        input: `blocks.${p.layer}.ln2.hook_normalized`,
        output: `blocks.${p.layer}.hook_mlp_out`,
      });
      assertEquals(tl, p);
      assertEquals(resolveMlpHookPair(model, { input: p.input, output: p.output }), p);
    }
  });
}

Deno.test("MLP hook pairs: mismatched, swapped or unknown hooks are refused by name", async () => {
  const { model } = await loadLm(TINY);
  const [a, b] = mlpHookPairs(model);
  assertThrows(
    () => resolveMlpHookPair(model, { input: a.input, output: b.output }),
    Error,
    "different blocks",
  );
  assertThrows(
    () =>
      resolveMlpHookPair(model, {
        input: "blocks.0.hook_mlp_out",
        output: "blocks.0.hook_mlp_out",
      }),
    Error,
    "blocks.L.ln2.hook_normalized",
  );
  assertThrows(
    () =>
      resolveMlpHookPair(model, {
        input: "blocks.9.ln2.hook_normalized",
        output: "blocks.9.hook_mlp_out",
      }),
    Error,
    "block 9 has no MLP",
  );
  assertThrows(
    () => resolveMlpHookPair(model, { input: a.post, output: a.output }),
    Error,
    "not an MLP input",
  );
});
