// Float64 pieces the BatchTopK-family trainer tests share (dense, Matryoshka): weights widened to
// float64, one token's pre-activations, the batch-wide top k·n selection and the decode through a
// selection held fixed (a small perturbation of the weights does not change which latents fire,
// so finite differences see the same selection the trainer took).
import type { Sae } from "../../sae/types.ts";

export type W = Record<string, Float64Array>;

export const to64 = (s: Sae): W =>
  Object.fromEntries(Object.entries(s.weights).map(([k, v]) => [k, Float64Array.from(v!)]));

/** Token t's pre-activations b_enc + (x_t − b_dec)·W_enc, [m]. */
export function pre64(w: W, x: ArrayLike<number>, t: number, d: number, m: number): Float64Array {
  return Float64Array.from({ length: m }, (_, j) => {
    let v = w.b_enc[j];
    for (let i = 0; i < d; i++) v += (x[t * d + i] - w.b_dec[i]) * w.W_enc[i * m + j];
    return v;
  });
}

/**
 * The k·n largest positive pre-activations over the n-token batch at w: `keep` as t·m + j, and the
 * smallest one kept (what the first batch sets the inference threshold to).
 */
export function batchTopk(
  w: W,
  x: ArrayLike<number>,
  dims: { n: number; d: number; m: number; k: number },
): { keep: Set<number>; smallest: number } {
  const { n, d, m, k } = dims;
  const all: { t: number; j: number; v: number }[] = [];
  for (let t = 0; t < n; t++) {
    pre64(w, x, t, d, m).forEach((v, j) => v > 0 && all.push({ t, j, v }));
  }
  all.sort((a, b) => b.v - a.v);
  const chosen = all.slice(0, k * n);
  return { keep: new Set(chosen.map((c) => c.t * m + c.j)), smallest: chosen.at(-1)!.v };
}

/** b_dec + Σ_{j < width, t·m + j ∈ keep} pre[j]·W_dec[j], [n·d]. */
export function decodeKept(
  w: W,
  x: ArrayLike<number>,
  keep: Set<number>,
  dims: { n: number; d: number; m: number },
  width = dims.m,
): Float64Array {
  const { n, d, m } = dims;
  const xhat = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    const pre = pre64(w, x, t, d, m);
    for (let i = 0; i < d; i++) {
      let v = w.b_dec[i];
      for (let j = 0; j < width; j++) if (keep.has(t * m + j)) v += pre[j] * w.W_dec[j * d + i];
      xhat[t * d + i] = v;
    }
  }
  return xhat;
}
