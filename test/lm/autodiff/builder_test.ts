// GPT-2- and Llama-style graphs: gradients of the mean NLL with respect to embeddings (Gather,
// and for GPT-2 the tied unembedding too) and weights inside the block, against float64 finite
// differences; then the float32 graphs in ORT (wasm and WebGPU) against the float64 gradients.
// The graphs have symbolic [batch, seq] dims; the runs use other sizes than the builder's example.
import { DataType, type ModelProto } from "../../../lm/onnx.ts";
import { missingGradientRules } from "../../../lm/autodiff/builder.ts";
import { checkGradient64, checkGradientOrt, type Feeds } from "../../util/gradcheck.ts";
import { mulberry32 } from "../../../lib/rng.ts";
import { freshRng, type Rng } from "../../util/rand.ts";
import { testGpu } from "../../util/gpu.ts";
import { gpt2Graph, llamaGraph, type LmDims } from "./model_graphs.ts";
import { assertEquals } from "@std/assert";

const DIMS: LmDims = { vocab: 11, d: 8, heads: 2, mlp: 12, ctx: 8 };

function tokens(rng: Rng, b: number, t: number): Feeds {
  const ids = Float64Array.from({ length: b * t }, () => rng.int(DIMS.vocab));
  const labels = Float64Array.from({ length: b * t }, () => rng.int(DIMS.vocab));
  return {
    input_ids: { dtype: DataType.INT64, dims: [b, t], data: ids },
    labels: { dtype: DataType.INT64, dims: [b, t], data: labels },
  };
}

/** Initializer values as feeds (so finite differences can perturb them). */
function initFeeds(m: ModelProto, names: string[], base: Feeds): Feeds {
  const out = { ...base };
  for (const t of m.graph!.initializer!) {
    if (!names.includes(t.name!)) continue;
    const raw = t.rawData!;
    const data = Float64Array.from(
      new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)),
    );
    out[t.name!] = { dtype: DataType.DOUBLE, dims: t.dims!.map(Number), data };
  }
  return out;
}

async function checkModel(
  name: string,
  make: (dtype: number, c: LmDims, rng: Rng) => ModelProto,
  wrt: string[],
) {
  const rng = freshRng(name);
  const wseed = rng.int(2 ** 31);
  const m64 = make(DataType.DOUBLE, DIMS, { ...rng, ...weightsRng(wseed) });
  assertEquals(missingGradientRules(m64, "loss", wrt), []);
  const feeds = initFeeds(m64, wrt, tokens(rng, 2, 5));
  const grads = checkGradient64(m64, "loss", wrt, feeds, rng, 1e-6);
  const m32 = make(DataType.FLOAT, DIMS, { ...rng, ...weightsRng(wseed) });
  const f32feeds = { input_ids: feeds.input_ids, labels: feeds.labels };
  // Same weights in float32: the initializers stay initializers (not fed).
  await checkGradientOrt(m32, "loss", wrt, f32feeds, grads, "wasm", undefined, 1e-4);
  const gpu = await testGpu();
  await checkGradientOrt(m32, "loss", wrt, f32feeds, grads, "webgpu", gpu.device, 1e-4);
}

/** A deterministic stream for the weights, so the float64 and float32 graphs share them. */
function weightsRng(seed: number): Pick<Rng, "normals64"> {
  const u = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
  return { normals64: (n, s = 1) => Float64Array.from({ length: n }, () => normal() * s) };
}

Deno.test("GPT-2-style graph: gradients match finite differences; ORT wasm and WebGPU agree", async () => {
  await checkModel("gpt2 graph", gpt2Graph, ["wte", "wpe", "c_attn.w", "ln1.g", "fc.b"]);
});

Deno.test("Llama-style graph: gradients match finite differences; ORT wasm and WebGPU agree", async () => {
  await checkModel("llama graph", llamaGraph, ["embed", "wq", "wk", "attn_norm", "w_gate"]);
});
