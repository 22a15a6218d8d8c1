// The element-wise and reduction kernels of the dense SAE step (shaders/sae_dense.wgsl); the
// matmuls are gpu/matmul.ts. Every function records one dispatch over explicit buffers, after
// checking that each holds what the shape needs. Matrices are row-major [rows, cols].
import { type Binding, Kernel, type Rec, requireDims, requireValues } from "./kernel.ts";

/** Largest k of topkRelu (the shader's K_MAX: its per-invocation insertion list). */
export const DENSE_TOPK_MAX_K = 256;

// Every entry reads in0, in1 and writes out; entries that ignore in1 still bind it, so all share
// one layout.
const kernel = new Kernel({
  name: "sae_dense",
  struct: "P",
  fields: { rows: "u32", cols: "u32", k: "u32", a: "f32", b: "f32" },
  wg: 64,
  layout: ["read", "read", "storage", "uniform"],
});

interface Dims {
  rows: number;
  cols: number;
}

function run(
  rec: Rec,
  entry: string,
  [in0, in1, out]: [Binding, Binding, Binding],
  dims: Dims & { k?: number; a?: number; b?: number },
  threads: number,
): void {
  kernel.record(rec, entry, [in0, in1, out], {
    rows: dims.rows,
    cols: dims.cols,
    k: dims.k ?? 0,
    a: dims.a ?? 0,
    b: dims.b ?? 0,
  }, { threads });
}

function guard(entry: string, dims: Dims, bufs: Record<string, [Binding, number]>): void {
  const name = `sae_dense.${entry}`;
  requireDims(name, { rows: dims.rows, cols: dims.cols });
  const shape = `rows=${dims.rows} cols=${dims.cols}`;
  for (const [what, [b, n]] of Object.entries(bufs)) requireValues(name, what, b, n, shape);
}

/** out[t, i] = x[t, i] − bias[i]   (x − b_dec). */
export function center(
  rec: Rec,
  { x, bias, out }: { x: Binding; bias: Binding; out: Binding },
  dims: Dims,
): void {
  const n = dims.rows * dims.cols;
  guard("center", dims, { x: [x, n], bias: [bias, dims.cols], out: [out, n] });
  run(rec, "center", [x, bias, out], dims, n);
}

/** h = ReLU of each row's k largest pre-activations (ties to the lower index), 0 elsewhere. */
export function topkRelu(
  rec: Rec,
  { pre, h }: { pre: Binding; h: Binding },
  dims: Dims & { k: number },
): void {
  const n = dims.rows * dims.cols;
  guard("topk_relu", dims, { pre: [pre, n], h: [h, n] });
  const { k } = dims;
  if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(DENSE_TOPK_MAX_K, dims.cols))) {
    throw new RangeError(
      `sae_dense.topk_relu: k must be in [1, min(${DENSE_TOPK_MAX_K}, cols=${dims.cols})], got ${k}`,
    );
  }
  run(rec, "topk_relu", [pre, pre, h], dims, dims.rows);
}

/** h = max(pre, 0). */
export function relu(rec: Rec, { pre, h }: { pre: Binding; h: Binding }, dims: Dims): void {
  const n = dims.rows * dims.cols;
  guard("relu", dims, { pre: [pre, n], h: [h, n] });
  run(rec, "relu", [pre, pre, h], dims, n);
}

/**
 * g ← a·(x̂ − x) + b·g in place: the MSE gradient (a = wMse·2/(N·d)) plus the external one; with
 * b = 0 g is not read (it may hold anything).
 */
export function dxhat(
  rec: Rec,
  { xhat, x, g }: { xhat: Binding; x: Binding; g: Binding },
  dims: Dims & { a: number; b: number },
): void {
  const n = dims.rows * dims.cols;
  guard("dxhat", dims, { xhat: [xhat, n], x: [x, n], g: [g, n] });
  run(rec, "dxhat", [xhat, x, g], dims, n);
}

/** out ← out + src over the first rows·cols values (the rest of out untouched). */
export function addInto(
  rec: Rec,
  { src, out }: { src: Binding; out: Binding },
  dims: Dims,
): void {
  const n = dims.rows * dims.cols;
  guard("add_into", dims, { src: [src, n], out: [out, n] });
  run(rec, "add_into", [src, src, out], dims, n);
}

/** dh ← (dh + a·norms[j])·[h > 0] in place: the gradient through ReLU, with the L1 term. */
export function maskGrad(
  rec: Rec,
  { h, norms, dh }: { h: Binding; norms: Binding; dh: Binding },
  dims: Dims & { a: number },
): void {
  const n = dims.rows * dims.cols;
  guard("mask_grad", dims, { h: [h, n], norms: [norms, dims.cols], dh: [dh, n] });
  run(rec, "mask_grad", [h, norms, dh], dims, n);
}

/** out[j] = Σ_t m[t, j]. */
export function colSum(rec: Rec, { m, out }: { m: Binding; out: Binding }, dims: Dims): void {
  guard("col_sum", dims, { m: [m, dims.rows * dims.cols], out: [out, dims.cols] });
  run(rec, "col_sum", [m, m, out], dims, dims.cols);
}

/**
 * out[i] ← out[i] − Σ_j W_enc[i, j]·dbEnc[j] in place, W_enc [rows = d, cols = n]: b_dec's
 * gradient, out holding Σ_t dx̂[t, i] on entry.
 */
export function bdecGrad(
  rec: Rec,
  { W_enc, dbEnc, out }: { W_enc: Binding; dbEnc: Binding; out: Binding },
  dims: Dims,
): void {
  guard("bdec_grad", dims, {
    W_enc: [W_enc, dims.rows * dims.cols],
    dbEnc: [dbEnc, dims.cols],
    out: [out, dims.rows],
  });
  run(rec, "bdec_grad", [W_enc, dbEnc, out], dims, dims.rows);
}

/** out[j] = ‖m[j, :]‖ (decoder row norms). */
export function rowNorms(rec: Rec, { m, out }: { m: Binding; out: Binding }, dims: Dims): void {
  guard("row_norms", dims, { m: [m, dims.rows * dims.cols], out: [out, dims.rows] });
  run(rec, "row_norms", [m, m, out], dims, dims.rows);
}

/**
 * gW ← gW + a·hsum[j]·W_dec[j, i]/max(‖W_dec,j‖, 1e-12) in place: the L1 term's decoder gradient;
 * `hsumNorms` holds Σ_t h (rows values) then the row norms (rows values).
 */
export function l1Dec(
  rec: Rec,
  { W_dec, hsumNorms, gW }: { W_dec: Binding; hsumNorms: Binding; gW: Binding },
  dims: Dims & { a: number },
): void {
  const n = dims.rows * dims.cols;
  guard("l1_dec", dims, {
    W_dec: [W_dec, n],
    hsumNorms: [hsumNorms, 2 * dims.rows],
    gW: [gW, n],
  });
  run(rec, "l1_dec", [W_dec, hsumNorms, gW], dims, n);
}

/** out[t] = #{j : h[t, j] > 0} as f32 (L0 per token). */
export function countActive(
  rec: Rec,
  { h, out }: { h: Binding; out: Binding },
  dims: Dims,
): void {
  guard("count_active", dims, { h: [h, dims.rows * dims.cols], out: [out, dims.rows] });
  run(rec, "count_active", [h, h, out], dims, dims.rows);
}
