// Shared by the lm/ tests: the tiny-neox fixture, its reference tensors, and an ORT wasm runner.
import { f32, i64, need, readSafetensors } from "../../lib/safetensors.ts";
import { encodeModel, loadModel, type ModelProto } from "../../lm/onnx.ts";
import { createSession, ort } from "../../lm/session.ts";

export const FIXTURE = new URL("../../fixtures/tiny-neox/", import.meta.url).pathname;
export const MODEL_PATH = `${FIXTURE}tiny-neox.onnx`;
export const HOOK = "/blocks.1/Add_2_output_0";

export function loadTiny(): Promise<ModelProto> {
  return loadModel(MODEL_PATH);
}

export interface Reference {
  inputIds: BigInt64Array;
  resid: Float32Array;
  recon: Float32Array;
  logitsClean: Float32Array;
  logitsSpliced: Float32Array;
  klPerToken: Float32Array;
  ceClean: Float32Array;
  ceSpliced: Float32Array;
  B: number;
  T: number;
  D: number;
  V: number;
}

export async function loadReference(): Promise<Reference> {
  const f = await readSafetensors(`${FIXTURE}reference.safetensors`);
  const ids = need(f, "input_ids");
  const [B, T] = ids.shape;
  return {
    inputIds: i64(ids),
    resid: f32(need(f, "resid", [B, T, 128])),
    recon: f32(need(f, "recon", [B, T, 128])),
    logitsClean: f32(need(f, "logits_clean", [B, T, 256])),
    logitsSpliced: f32(need(f, "logits_spliced", [B, T, 256])),
    klPerToken: f32(need(f, "kl_per_token", [B, T])),
    ceClean: f32(need(f, "ce_clean_per_token", [B, T - 1])),
    ceSpliced: f32(need(f, "ce_spliced_per_token", [B, T - 1])),
    B,
    T,
    D: 128,
    V: 256,
  };
}

export type Feed = Float32Array | Float64Array | BigInt64Array;

/** Runs a model once on the wasm EP; returns every output as a plain array with its dims. */
export async function runWasm(
  model: ModelProto,
  feeds: Record<string, { data: Feed; dims: number[] }>,
): Promise<Record<string, { data: Float32Array | Float64Array | BigInt64Array; dims: number[] }>> {
  const s = await createSession(encodeModel(model), { ep: "wasm" });
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      const type = v.data instanceof Float32Array
        ? "float32"
        : v.data instanceof Float64Array
        ? "float64"
        : "int64";
      ortFeeds[k] = new ort.Tensor(type, v.data, v.dims);
    }
    const out = await s.run(ortFeeds);
    const res: Record<
      string,
      { data: Float32Array | Float64Array | BigInt64Array; dims: number[] }
    > = {};
    for (const [k, t] of Object.entries(out)) {
      res[k] = {
        data: t.data as Float32Array | Float64Array | BigInt64Array,
        dims: [...t.dims],
      };
    }
    return res;
  } finally {
    await s.release();
  }
}
