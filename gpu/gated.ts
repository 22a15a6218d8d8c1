// The gated SAE's encoder activation and its pre-activation gradients (shaders/gated.wgsl). Every
// function records one dispatch over explicit buffers, after checking that each holds what the
// shape needs; matrices are row-major [rows = tokens, cols = d_sae].
import { type Binding, Kernel, type Rec, requireDims, requireValues } from "./kernel.ts";

const kernel = new Kernel({
  name: "gated",
  struct: "Args",
  fields: { rows: "u32", cols: "u32", a: "f32" },
  wg: 64,
});

interface Dims {
  rows: number;
  cols: number;
}

function guard(entry: string, dims: Dims, bufs: Record<string, [Binding, number]>): void {
  const name = `gated.${entry}`;
  requireDims(name, { rows: dims.rows, cols: dims.cols });
  const shape = `rows=${dims.rows} cols=${dims.cols}`;
  for (const [what, [b, n]] of Object.entries(bufs)) requireValues(name, what, b, n, shape);
}

/**
 * From u = (x − b_dec)·W_enc: f = 1[u + b_gate > 0]·ReLU(exp(r_mag)·u + b_mag) and
 * gate = ReLU(u + b_gate).
 */
export function encode(
  rec: Rec,
  { u, bGate, rMag, bMag, f, gate }: {
    u: Binding;
    bGate: Binding;
    rMag: Binding;
    bMag: Binding;
    f: Binding;
    gate: Binding;
  },
  dims: Dims,
): void {
  const n = dims.rows * dims.cols, m = dims.cols;
  guard("encode", dims, {
    u: [u, n],
    bGate: [bGate, m],
    rMag: [rMag, m],
    bMag: [bMag, m],
    f: [f, n],
    gate: [gate, n],
  });
  kernel.record(rec, "encode", [u, bGate, rMag, bMag, f, gate], { ...dims, a: 0 }, {
    threads: n,
  });
}

/**
 * In place: dh (∂f on entry) ← ∂π_mag = dh·1[f > 0]; dg (the auxiliary term's ∂gate on entry) ←
 * ∂π_gate = (dg + a·norms[j])·1[gate > 0]; and du ← ∂π_gate + exp(r_mag)·∂π_mag. `a` is the L1
 * term's λ/N, `norms` the decoder row norms.
 */
export function preGrad(
  rec: Rec,
  { f, gate, norms, rMag, dh, dg, du }: {
    f: Binding;
    gate: Binding;
    norms: Binding;
    rMag: Binding;
    dh: Binding;
    dg: Binding;
    du: Binding;
  },
  dims: Dims & { a: number },
): void {
  const n = dims.rows * dims.cols, m = dims.cols;
  guard("pre_grad", dims, {
    f: [f, n],
    gate: [gate, n],
    norms: [norms, m],
    rMag: [rMag, m],
    dh: [dh, n],
    dg: [dg, n],
    du: [du, n],
  });
  kernel.record(rec, "pre_grad", [f, gate, norms, rMag, dh, dg, du], dims, { threads: n });
}

/** out[j] = exp(r_mag[j])·Σ_t dmag[t, j]·u[t, j]: r_mag's gradient. */
export function rGrad(
  rec: Rec,
  { dmag, u, rMag, out }: { dmag: Binding; u: Binding; rMag: Binding; out: Binding },
  dims: Dims,
): void {
  const n = dims.rows * dims.cols, m = dims.cols;
  guard("r_grad", dims, { dmag: [dmag, n], u: [u, n], rMag: [rMag, m], out: [out, m] });
  kernel.record(rec, "r_grad", [dmag, u, rMag, out], { ...dims, a: 0 }, { threads: m });
}
