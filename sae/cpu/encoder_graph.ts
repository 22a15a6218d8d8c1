// The TopK encoder as a small ONNX graph for the native runtime's CPU EP: the dense
// [n, d_in]·[d_in, d_sae] product is the one part of a TopK SAE step that is not sparse, and ORT's
// MLAS kernels run it on every core, vectorised, where JS would run it on one. The weights are
// graph inputs fed each run (the trainer changes them every step; ORT reads the arrays in place).
// W_enc comes transposed, [d_sae, d_in] (Gemm's transB), so the trainer's sparse gradient
// scatters into contiguous rows.
//   pre = xc·W_encᵀ + b_enc;  (val, idx) = TopK(pre, k)                        [n, k] each
//   with auxk: (aux_val, aux_pos) = TopK(pre[:, dead_idx], aux_k)   aux_pos indexes dead_idx
// Values are raw pre-activations: the trainer applies the ReLU.
import { makeModel, makeNode } from "../../lm/graph.ts";
import { DataType, encodeModel, makeTensor } from "../../lm/onnx.ts";
import { toValueInfo } from "../../lm/shapes.ts";

export interface EncoderGraphDims {
  dIn: number;
  dSae: number;
  k: number;
  /** With the auxk selection among the latents in dead_idx (aux_k of them, fed each run). */
  auxk: boolean;
}

const valueInfo = (name: string, elemType: number, dims: Array<number | string>) =>
  toValueInfo(name, { elemType, dims });

/**
 * The encoder model's bytes. Inputs xc [n, d_in], W_enc_t [d_sae, d_in], b_enc [d_sae]; with auxk
 * also dead_idx (int64 [n_dead]) and aux_k (int64 [1], at most n_dead).
 */
export function encoderModel({ dIn, dSae, k, auxk }: EncoderGraphDims): Uint8Array {
  const F = DataType.FLOAT, I = DataType.INT64;
  // Unsorted: the trainer does not need the order, and the sort costs.
  const topk = { axis: -1, largest: 1, sorted: 0 };
  const node = [
    makeNode("Gemm", ["xc", "W_enc_t", "b_enc"], ["pre"], { transB: 1 }),
    makeNode("TopK", ["pre", "k"], ["val", "idx"], topk),
  ];
  const input = [
    valueInfo("xc", F, ["n", dIn]),
    valueInfo("W_enc_t", F, [dSae, dIn]),
    valueInfo("b_enc", F, [dSae]),
  ];
  const output = [valueInfo("val", F, ["n", k]), valueInfo("idx", I, ["n", k])];
  if (auxk) {
    node.push(
      makeNode("Gather", ["pre", "dead_idx"], ["pre_dead"], { axis: 1 }),
      makeNode("TopK", ["pre_dead", "aux_k"], ["aux_val", "aux_pos"], topk),
    );
    input.push(valueInfo("dead_idx", I, ["n_dead"]), valueInfo("aux_k", I, [1]));
    output.push(valueInfo("aux_val", F, ["n", "k_aux"]), valueInfo("aux_pos", I, ["n", "k_aux"]));
  }
  return encodeModel(makeModel({
    name: auxk ? "topk_encoder_auxk" : "topk_encoder",
    nodes: node,
    inputs: input,
    outputs: output,
    initializers: [makeTensor("k", BigInt64Array.of(BigInt(k)), [1])],
  }));
}
