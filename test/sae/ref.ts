// A plain float64 SAE forward (SAELens semantics) for tests of files, init and scaling; transcoders
// (no b_dec on the encoder's input, the skip x·W_skipᵀ added) and their float64 loss for
// finite-difference checks of the trainers.
import type { Sae, SaeConfig } from "../../sae/types.ts";

/** Weights as any numeric arrays (float64 ones for finite differences). */
export type RefWeights = Record<string, ArrayLike<number> | undefined>;

export function forwardRef(
  sae: { cfg: SaeConfig; weights: RefWeights | Sae["weights"] },
  x: ArrayLike<number>,
): { xHat: Float64Array; h: Float64Array } {
  const { dIn: d, dSae: n, kind, k } = sae.cfg;
  const w = sae.weights as Record<string, ArrayLike<number>>;
  const N = x.length / d;
  const inBias = sae.cfg.transcoder ? 0 : 1;
  const h = new Float64Array(N * n), xHat = new Float64Array(N * d);
  const pre = new Float64Array(n);
  for (let t = 0; t < N; t++) {
    for (let i = 0; i < n; i++) pre[i] = w.b_enc[i];
    for (let j = 0; j < d; j++) {
      const v = x[t * d + j] - inBias * w.b_dec[j];
      for (let i = 0; i < n; i++) pre[i] += v * w.W_enc[j * n + i];
    }
    const row = h.subarray(t * n, (t + 1) * n);
    if (kind === "relu") { for (let i = 0; i < n; i++) row[i] = Math.max(0, pre[i]); }
    else if (kind === "jumprelu") {
      for (let i = 0; i < n; i++) row[i] = pre[i] > w.threshold![i] ? Math.max(0, pre[i]) : 0;
    } else if (kind === "batchtopk") {
      for (let i = 0; i < n; i++) row[i] = Math.max(0, pre[i]) > w.threshold![0] ? pre[i] : 0;
    } else {
      const order = [...pre.keys()].sort((a, b) => pre[b] - pre[a]).slice(0, k!);
      for (const i of order) row[i] = Math.max(0, pre[i]);
    }
    for (let j = 0; j < d; j++) xHat[t * d + j] = w.b_dec[j];
    for (let i = 0; i < n; i++) {
      if (row[i] === 0) continue;
      for (let j = 0; j < d; j++) xHat[t * d + j] += row[i] * w.W_dec[i * d + j];
    }
    if (sae.cfg.transcoder?.skip) {
      for (let o = 0; o < d; o++) {
        for (let j = 0; j < d; j++) xHat[t * d + o] += x[t * d + j] * w.W_skip[o * d + j];
      }
    }
  }
  return { xHat, h };
}

/**
 * The trainers' loss in float64: wMse·mean((ŷ − y)²) + wExt·⟨g, ŷ⟩, ŷ = forwardRef(x) (y = x for
 * an SAE, the MLP output for a transcoder).
 */
export function lossRef(
  cfg: SaeConfig,
  w: RefWeights,
  o: {
    x: ArrayLike<number>;
    y: ArrayLike<number>;
    g: ArrayLike<number>;
    wMse: number;
    wExt: number;
  },
): number {
  const { xHat } = forwardRef({ cfg, weights: w }, o.x);
  let se = 0, ext = 0;
  for (let e = 0; e < xHat.length; e++) {
    se += (xHat[e] - o.y[e]) ** 2;
    ext += o.g[e] * xHat[e];
  }
  return o.wMse * se / xHat.length + o.wExt * ext;
}

export function randomSae(
  rng: { normals(n: number, s?: number): Float32Array; uniform(): number },
  cfg: Sae["cfg"],
): Sae {
  const { dIn: d, dSae: n } = cfg;
  const sae: Sae = {
    cfg,
    weights: {
      W_enc: rng.normals(d * n, 1 / Math.sqrt(d)),
      b_enc: rng.normals(n, 0.1),
      W_dec: rng.normals(n * d, 1 / Math.sqrt(d)),
      b_dec: rng.normals(d, 0.3),
    },
  };
  if (cfg.kind === "jumprelu") {
    sae.weights.threshold = Float32Array.from({ length: n }, () => rng.uniform() * 0.3);
  }
  if (cfg.kind === "batchtopk") sae.weights.threshold = new Float32Array([rng.uniform() * 0.2]);
  return sae;
}
