// The sparse TopK SAE kernels (shaders/sae_sparse.wgsl) over K (index, value) pairs per token:
// decode, the gradient of the values, and the weight gradients through a latent → entries index
// (count, scan, scatter, sort; WGSL has no float atomics, so sums run per latent in a fixed order).
// n tokens, d inputs, m latents, k pairs per token; W_dec is [m, d], W_enc [d, m].
import { type Binding, Kernel, type Rec, requireDims, requireValues } from "./kernel.ts";

const kernel = new Kernel({
  name: "sae_sparse",
  struct: "Args",
  fields: {
    n: "u32",
    d: "u32",
    m: "u32",
    k: "u32",
    transposed: "u32",
    accumulate: "u32",
    window: "u32",
  },
  wg: 64,
});

export interface SparseDims {
  n: number;
  d: number;
  m: number;
  k: number;
}

function guard(
  entry: string,
  dims: Partial<SparseDims>,
  bufs: Record<string, [Binding, number]>,
): string {
  const name = `sae_sparse.${entry}`;
  requireDims(name, dims as Record<string, number>);
  const shape = Object.entries(dims).map(([k, v]) => `${k}=${v}`).join(" ");
  for (const [what, [b, n]] of Object.entries(bufs)) requireValues(name, what, b, n, shape);
  return name;
}

function args(
  dims: Partial<SparseDims>,
  o: { transposed?: boolean; accumulate?: boolean; window?: number } = {},
) {
  return {
    n: dims.n ?? 0,
    d: dims.d ?? 0,
    m: dims.m ?? 0,
    k: dims.k ?? 0,
    transposed: o.transposed ? 1 : 0,
    accumulate: o.accumulate ? 1 : 0,
    window: o.window ?? 0,
  };
}

/** out[t, i] = b[i] + Σ_s val[t, s]·W_dec[idx[t, s], i]. */
export function decode(
  rec: Rec,
  { idx, val, W_dec, b, out }: {
    idx: Binding;
    val: Binding;
    W_dec: Binding;
    b: Binding;
    out: Binding;
  },
  dims: SparseDims,
): void {
  const { n, d, m, k } = dims;
  guard("decode", dims, {
    idx: [idx, n * k],
    val: [val, n * k],
    W_dec: [W_dec, m * d],
    b: [b, d],
    out: [out, n * d],
  });
  kernel.record(rec, "decode", [idx, val, W_dec, b, out], args(dims), { threads: n * d });
}

/** out[t, s] = [val > 0]·Σ_i dx[t, i]·W_dec[idx[t, s], i]. */
export function dval(
  rec: Rec,
  { idx, val, dx, W_dec, out }: {
    idx: Binding;
    val: Binding;
    dx: Binding;
    W_dec: Binding;
    out: Binding;
  },
  dims: SparseDims,
): void {
  const { n, d, m, k } = dims;
  guard("dval", dims, {
    idx: [idx, n * k],
    val: [val, n * k],
    dx: [dx, n * d],
    W_dec: [W_dec, m * d],
    out: [out, n * k],
  });
  kernel.record(rec, "dval", [idx, val, dx, W_dec, out], args(dims), { threads: n * k });
}

/**
 * The latent → entries index of (idx, val): count [m] and cursor [m] zero on entry (clear them
 * in the encoder before the pass), offs [m + 1] the bucket starts, list [n·k] the entries
 * e = t·k + s with val > 0, each bucket in increasing e.
 */
export interface LatentIndex {
  count: GPUBuffer;
  offs: GPUBuffer;
  cursor: GPUBuffer;
  list: Binding;
}

/** Records count, scan, scatter and sort: builds `index` for (idx, val). */
export function buildIndex(
  rec: Rec,
  { idx, val, index }: { idx: Binding; val: Binding; index: LatentIndex },
  dims: Omit<SparseDims, "d">,
): void {
  const { n, m, k } = dims;
  const { count, offs, cursor, list } = index;
  guard("build_index", dims, {
    idx: [idx, n * k],
    val: [val, n * k],
    count: [count, m],
    offs: [offs, m + 1],
    cursor: [cursor, m],
    list: [list, n * k],
  });
  const a = args(dims);
  kernel.record(rec, "count", [idx, val, count], a, { threads: n * k });
  kernel.record(rec, "scan", [count, offs], a, "one workgroup");
  kernel.record(rec, "scatter", [idx, val, offs, cursor, list], a, { threads: n * k });
  kernel.record(rec, "sort", [offs, list], a, { threads: m });
}

/**
 * Over a built index: out[j, i] (or out[i, j] when `transposed`) = Σ_{e ∈ bucket j}
 * coef[e]·rows[t(e), i], written or, with `accumulate`, added.
 */
export function gradW(
  rec: Rec,
  { index, coef, rows, out }: { index: LatentIndex; coef: Binding; rows: Binding; out: Binding },
  dims: SparseDims,
  o: { transposed: boolean; accumulate: boolean },
): void {
  const { n, d, m, k } = dims;
  guard("grad_w", dims, {
    offs: [index.offs, m + 1],
    list: [index.list, n * k],
    coef: [coef, n * k],
    rows: [rows, n * d],
    out: [out, m * d],
  });
  kernel.record(rec, "grad_w", [index.offs, index.list, coef, rows, out], args(dims, o), {
    threads: m * d,
  });
}

/** Over a built index: out[j] = Σ_{e ∈ bucket j} coef[e], written or added. */
export function gradB(
  rec: Rec,
  { index, coef, out }: { index: LatentIndex; coef: Binding; out: Binding },
  dims: Omit<SparseDims, "d">,
  o: { accumulate: boolean },
): void {
  const { n, m, k } = dims;
  guard("grad_b", dims, {
    offs: [index.offs, m + 1],
    list: [index.list, n * k],
    coef: [coef, n * k],
    out: [out, m],
  });
  kernel.record(rec, "grad_b", [index.offs, index.list, coef, out], args(dims, o), {
    threads: m,
  });
}

/**
 * The sparse SAE's weight gradients from (idx, val) [n, k], dval = ∂L/∂val, dx = ∂L/∂x̂ and
 * xc = x − b_dec: builds the index, then ∂W_dec [m, d], ∂W_enc [d, m] and ∂b_enc [m], written or
 * (`accumulate`, the auxk terms) added.
 */
export function sparseGrads(
  rec: Rec,
  b: {
    idx: Binding;
    val: Binding;
    dval: Binding;
    dx: Binding;
    xc: Binding;
    index: LatentIndex;
    gW_dec: Binding;
    gW_enc: Binding;
    gb_enc: Binding;
  },
  dims: SparseDims,
  accumulate: boolean,
): void {
  buildIndex(rec, b, dims);
  gradW(rec, { index: b.index, coef: b.val, rows: b.dx, out: b.gW_dec }, dims, {
    transposed: false,
    accumulate,
  });
  gradW(rec, { index: b.index, coef: b.dval, rows: b.xc, out: b.gW_enc }, dims, {
    transposed: true,
    accumulate,
  });
  gradB(rec, { index: b.index, coef: b.dval, out: b.gb_enc }, dims, { accumulate });
}

/**
 * out[t, j] = pre[t, j] where latent j is dead (since[j] ≥ window), else −FLT_MAX: the input of
 * the auxk top-k.
 */
export function maskDead(
  rec: Rec,
  { pre, since, out }: { pre: Binding; since: Binding; out: Binding },
  { n, m, window }: { n: number; m: number; window: number },
): void {
  guard("mask_dead", { n, m }, { pre: [pre, n * m], since: [since, m], out: [out, n * m] });
  kernel.record(rec, "mask_dead", [pre, since, out], args({ n, m }, { window }), {
    threads: n * m,
  });
}
