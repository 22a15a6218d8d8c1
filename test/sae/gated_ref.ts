// A float64 gated SAE (Rajamanoharan et al. 2024, SAELens' GatedSAE semantics) and its training loss,
// for the trainer's finite-difference checks and the I/O tests.
import type { Sae, SaeConfig } from "../../sae/types.ts";

export type GatedWeights = Record<
  "W_enc" | "b_enc" | "W_dec" | "b_dec" | "r_mag" | "b_mag",
  ArrayLike<number>
>;

export interface GatedForward {
  xHat: Float64Array;
  /** f = 1[π_gate > 0]·ReLU(π_mag) [N, d_sae]. */
  f: Float64Array;
  /** ReLU(π_gate) [N, d_sae]. */
  gate: Float64Array;
  /** π_gate > 0, or the mask given. */
  open: Uint8Array;
}

/**
 * The forward of x [N, d_in]. `open`: the gate's step taken from elsewhere (a finite difference
 * fixes it at the unperturbed weights, since no gradient passes it).
 */
export function gatedForwardRef(
  cfg: SaeConfig,
  w: GatedWeights,
  x: ArrayLike<number>,
  open?: Uint8Array,
): GatedForward {
  const { dIn: d, dSae: m } = cfg;
  const N = x.length / d;
  const f = new Float64Array(N * m), gate = new Float64Array(N * m);
  const xHat = new Float64Array(N * d), mask = open ?? new Uint8Array(N * m);
  const u = new Float64Array(m);
  for (let t = 0; t < N; t++) {
    u.fill(0);
    for (let i = 0; i < d; i++) {
      const v = x[t * d + i] - w.b_dec[i];
      for (let j = 0; j < m; j++) u[j] += v * w.W_enc[i * m + j];
    }
    for (let j = 0; j < m; j++) {
      const e = t * m + j, pg = u[j] + w.b_enc[j];
      if (!open) mask[e] = pg > 0 ? 1 : 0;
      gate[e] = Math.max(0, pg);
      f[e] = mask[e] ? Math.max(0, Math.exp(w.r_mag[j]) * u[j] + w.b_mag[j]) : 0;
    }
    for (let i = 0; i < d; i++) {
      let v = w.b_dec[i];
      for (let j = 0; j < m; j++) v += f[t * m + j] * w.W_dec[j * d + i];
      xHat[t * d + i] = v;
    }
  }
  return { xHat, f, gate, open: mask };
}

/**
 * The trainer's loss: wMse·mean((x̂ − x)²) + wExt·⟨g, x̂⟩ + (λ/N)·Σ ReLU(π_gate)·‖W_dec,j‖ +
 * mean((ReLU(π_gate)·W_dec⁰ + b_dec⁰ − x)²), with W_dec⁰, b_dec⁰ the detached decoder.
 */
export function gatedLossRef(
  cfg: SaeConfig,
  w: GatedWeights,
  o: {
    x: ArrayLike<number>;
    g: ArrayLike<number>;
    wMse: number;
    wExt: number;
    lambda: number;
    detached: { W_dec: ArrayLike<number>; b_dec: ArrayLike<number> };
    open?: Uint8Array;
  },
): { loss: number; aux: number } {
  const { dIn: d, dSae: m } = cfg;
  const { xHat, gate } = gatedForwardRef(cfg, w, o.x, o.open);
  const N = o.x.length / d;
  let se = 0, ext = 0, l1 = 0, aux = 0;
  for (let e = 0; e < xHat.length; e++) {
    se += (xHat[e] - o.x[e]) ** 2;
    ext += o.g[e] * xHat[e];
  }
  const norms = Float64Array.from({ length: m }, (_, j) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += w.W_dec[j * d + i] ** 2;
    return Math.sqrt(s);
  });
  for (let t = 0; t < N; t++) {
    for (let j = 0; j < m; j++) l1 += gate[t * m + j] * norms[j];
    for (let i = 0; i < d; i++) {
      let v = o.detached.b_dec[i];
      for (let j = 0; j < m; j++) v += gate[t * m + j] * o.detached.W_dec[j * d + i];
      aux += (v - o.x[t * d + i]) ** 2;
    }
  }
  aux /= N * d;
  return {
    loss: o.wMse * se / (N * d) + o.wExt * ext + o.lambda * l1 / N + aux,
    aux,
  };
}

export function randomGatedSae(
  rng: { normals(n: number, s?: number): Float32Array },
  dIn: number,
  dSae: number,
): Sae {
  const d = dIn, m = dSae;
  return {
    cfg: { kind: "gated", dIn: d, dSae: m },
    weights: {
      W_enc: rng.normals(d * m, 1 / Math.sqrt(d)),
      b_enc: rng.normals(m, 0.1),
      W_dec: rng.normals(m * d, 1 / Math.sqrt(d)),
      b_dec: rng.normals(d, 0.3),
      r_mag: rng.normals(m, 0.3),
      b_mag: rng.normals(m, 0.1),
    },
  };
}
