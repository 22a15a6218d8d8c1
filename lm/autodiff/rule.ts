// The contract between the gradient builder and its per-op rules, kept apart from the builder so
// the rules (which the builder imports) need not import it back.
import type { NodeProto } from "../onnx.ts";

export class GradientBuildError extends Error {
  override name = "GradientBuildError";
}

/** What a rule sees: the forward node, its tensors' example shapes, and an emitter. */
export interface RuleContext {
  node: NodeProto;
  opset: number;
  /** Input name i ("" if absent). */
  x(i: number): string;
  /** Output name i. */
  y(i: number): string;
  /** Gradient of output i, or null if nothing downstream depends on it. */
  gy(i: number): string | null;
  /** Whether input i needs a gradient. */
  needs(i: number): boolean;
  shape(name: string): number[];
  rank(name: string): number;
  dtype(name: string): number;
  /** Known value of a (small) tensor at example dims, or null. */
  value(name: string): Float64Array | null;
  emit(
    op: string,
    inputs: string[],
    attrs?: Record<string, number | number[] | string>,
    nOut?: number,
  ): string[];
  op(op: string, inputs: string[], attrs?: Record<string, number | number[] | string>): string;
  /** A float constant of the dtype of `like`. */
  scalar(v: number, like: string): string;
  ints(values: number[]): string;
  zerosLike(name: string): string;
  /**
   * Sums g over the axes that broadcasting added, down to the shape of `x`. `gDims` are g's
   * example dims (default: those of output 0).
   */
  unbroadcast(g: string, x: string, gDims?: number[]): string;
  reduceSum(x: string, axes: number[], keepdims: boolean): string;
  reduceMean(x: string, axes: number[], keepdims: boolean): string;
  unsqueeze(x: string, axes: number[]): string;
  error(msg: string): GradientBuildError;
}

export type Rule = (c: RuleContext) => (string | null)[];
