// LoRA insertion: MatMul(x, W) with W a matching 2-D weight initializer becomes
// MatMul(x, W) + MatMul(MatMul(x, A), B)·(alpha/rank), with A [dIn, rank] and B [rank, dOut] new
// graph inputs (trainable through the gradient builder). With B = 0 the model is unchanged.
import { allNames, freshName, makeNode } from "./graph.ts";
import { layerOf } from "./hooks.ts";
import {
  cloneModel,
  DataType,
  makeTensor,
  type ModelProto,
  type NodeProto,
  tensorDims,
} from "./onnx.ts";
import { toValueInfo } from "./shapes.ts";

export interface LoraOptions {
  /** Tested against the weight initializer's name and the MatMul node's name. */
  match: RegExp;
  /** Inclusive layer range, from `h.<i>` / `layers.<i>` / `blocks.<i>` in the names. */
  layers?: [number, number];
  rank: number;
  alpha: number;
}

export interface LoraAdapter {
  /** The adapted MatMul node's name (or its weight's, when the node has none). */
  name: string;
  /** Weight initializer that is adapted. */
  weight: string;
  A: string;
  B: string;
  dIn: number;
  dOut: number;
}

export function insertLora(
  model: ModelProto,
  opts: LoraOptions,
): { model: ModelProto; adapters: LoraAdapter[] } {
  const { rank, alpha } = opts;
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`insertLora: rank ${rank} must be ≥ 1`);
  const m = cloneModel(model);
  const g = m.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? "", t]));
  const taken = allNames(g);
  const adapters: LoraAdapter[] = [];
  const candidates: string[] = [];
  const nodes: NodeProto[] = [];
  const initializers = [...(g.initializer ?? [])];
  const inputs = [...(g.input ?? [])];
  const test = (s: string) => {
    opts.match.lastIndex = 0; // a /g regexp keeps state between calls
    return opts.match.test(s);
  };
  for (const node of g.node ?? []) {
    const w = node.opType === "MatMul" ? inits.get(node.input?.[1] ?? "") : undefined;
    if (!w || tensorDims(w).length !== 2) {
      nodes.push(node);
      continue;
    }
    const label = node.name || w.name!;
    candidates.push(label === w.name ? label : `${label} (${w.name})`);
    const layer = layerOf(node.name || w.name!);
    const inRange = !opts.layers ||
      (layer !== undefined && layer >= opts.layers[0] && layer <= opts.layers[1]);
    if (!(test(w.name!) || test(node.name ?? "")) || !inRange) {
      nodes.push(node);
      continue;
    }
    const et = w.dataType ?? 0;
    if (et !== DataType.FLOAT && et !== DataType.DOUBLE) {
      throw new Error(
        `insertLora: weight ${w.name} is ${
          DataType[et]
        }; only float32/float64 weights are supported`,
      );
    }
    const [dIn, dOut] = tensorDims(w);
    const base = label.replace(/^\//, "").replace(/[^A-Za-z0-9_.]+/g, ".");
    const A = freshName(g, `lora.${base}.A`, taken);
    const B = freshName(g, `lora.${base}.B`, taken);
    const scale = freshName(g, `lora.${base}.scale`, taken);
    const y = node.output![0];
    const yBase = freshName(g, `${y}/lora_base`, taken);
    const xa = freshName(g, `${y}/lora_xa`, taken);
    const xab = freshName(g, `${y}/lora_xab`, taken);
    const delta = freshName(g, `${y}/lora_delta`, taken);
    const s = alpha / rank;
    initializers.push(
      makeTensor(scale, et === DataType.FLOAT ? Float32Array.of(s) : Float64Array.of(s), []),
    );
    inputs.push(toValueInfo(A, { elemType: et, dims: [dIn, rank] }));
    inputs.push(toValueInfo(B, { elemType: et, dims: [rank, dOut] }));
    const x = node.input![0];
    const p = `${label}/lora`;
    nodes.push(makeNode("MatMul", [x, w.name!], [yBase], {}, node.name || undefined));
    nodes.push(makeNode("MatMul", [x, A], [xa], {}, `${p}/MatMul_A`));
    nodes.push(makeNode("MatMul", [xa, B], [xab], {}, `${p}/MatMul_B`));
    nodes.push(makeNode("Mul", [xab, scale], [delta], {}, `${p}/Mul_scale`));
    nodes.push(makeNode("Add", [yBase, delta], [y], {}, `${p}/Add`));
    adapters.push({ name: label, weight: w.name!, A, B, dIn, dOut });
  }
  if (adapters.length === 0) {
    throw new Error(
      `insertLora: no MatMul weight matches ${opts.match}` +
        (opts.layers ? ` in layers ${opts.layers[0]}..${opts.layers[1]}` : "") +
        `. MatMuls with weight initializers:\n  ${candidates.join("\n  ") || "(none)"}`,
    );
  }
  g.node = nodes;
  g.initializer = initializers;
  g.input = inputs;
  return { model: m, adapters };
}
