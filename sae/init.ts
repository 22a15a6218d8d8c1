// SAE initialisation: decoder rows random unit vectors (seeded), encoder = decoder transpose,
// b_enc = 0, b_dec = geometric median (Weiszfeld) or mean of a sample of activations.
import { mulberry32 } from "../lib/rng.ts";
import type { Sae, SaeConfig } from "./types.ts";

export interface InitOptions {
  seed: number;
  /** b_dec; default zeros. Use geometricMedian() or mean() of a sample. */
  bDec?: Float32Array;
  /** jumprelu's initial per-latent threshold (default 0.001, as dictionary_learning). */
  threshold?: number;
}

export function initSae(cfg: SaeConfig, opts: InitOptions): Sae {
  const { dIn: d, dSae: n } = cfg;
  // Seeded, so an init is reproducible from its seed.
  const u = mulberry32(opts.seed);
  const normal = () =>
    Math.sqrt(-2 * Math.log(Math.max(u(), 1e-300))) * Math.cos(2 * Math.PI * u());
  const W_dec = new Float32Array(n * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) {
      row[j] = normal();
      ss += row[j] * row[j];
    }
    const inv = 1 / Math.sqrt(ss);
    for (let j = 0; j < d; j++) W_dec[i * d + j] = row[j] * inv;
  }
  const W_enc = new Float32Array(d * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) W_enc[j * n + i] = W_dec[i * d + j];
  if (opts.bDec && opts.bDec.length !== d) {
    throw new Error(`initSae: bDec has ${opts.bDec.length} values, expected d_in = ${d}`);
  }
  const sae: Sae = {
    cfg: structuredClone(cfg),
    weights: {
      W_enc,
      b_enc: new Float32Array(n),
      W_dec,
      b_dec: opts.bDec ? opts.bDec.slice() : new Float32Array(d),
    },
  };
  if (cfg.kind === "jumprelu") {
    sae.weights.threshold = new Float32Array(n).fill(opts.threshold ?? 0.001);
  }
  // gated: W_mag = W_enc (r_mag 0) and both biases 0 at the start, as SAELens and
  // dictionary_learning initialise it.
  if (cfg.kind === "gated") {
    sae.weights.r_mag = new Float32Array(n);
    sae.weights.b_mag = new Float32Array(n);
  }
  // BatchTopK's inference threshold is unset (−1) until training has seen a batch.
  if (cfg.kind === "batchtopk" || cfg.kind === "matryoshka_batchtopk") {
    sae.weights.threshold = Float32Array.of(-1);
  }
  return sae;
}

/** Column mean of x [tokens, d]. */
export function mean(x: Float32Array, d: number): Float32Array {
  const N = rows(x, d);
  const m = new Float64Array(d);
  for (let t = 0; t < N; t++) for (let j = 0; j < d; j++) m[j] += x[t * d + j];
  return Float32Array.from(m, (v) => v / N);
}

function rows(x: Float32Array, d: number): number {
  if (x.length === 0 || x.length % d !== 0) {
    throw new Error(`expected a non-empty [tokens, ${d}] sample, found ${x.length} values`);
  }
  return x.length / d;
}

/**
 * Geometric median of the rows of x [tokens, d] by Weiszfeld's iterations in float64, starting from
 * the mean: m ← Σ w_t x_t / Σ w_t with w_t = 1/max(‖x_t − m‖, eps). Stops when m moves less than
 * tol·(1 + ‖m‖) or after maxIter iterations.
 */
export function geometricMedian(
  x: Float32Array,
  d: number,
  opts: { maxIter?: number; tol?: number; eps?: number } = {},
): Float32Array {
  const N = rows(x, d);
  const maxIter = opts.maxIter ?? 100, tol = opts.tol ?? 1e-7, eps = opts.eps ?? 1e-12;
  let m = Float64Array.from(mean(x, d));
  const next = new Float64Array(d);
  for (let it = 0; it < maxIter; it++) {
    next.fill(0);
    let wsum = 0;
    for (let t = 0; t < N; t++) {
      let dist = 0;
      for (let j = 0; j < d; j++) dist += (x[t * d + j] - m[j]) ** 2;
      const w = 1 / Math.max(Math.sqrt(dist), eps);
      wsum += w;
      for (let j = 0; j < d; j++) next[j] += w * x[t * d + j];
    }
    let move = 0, norm = 0;
    for (let j = 0; j < d; j++) {
      next[j] /= wsum;
      move += (next[j] - m[j]) ** 2;
      norm += next[j] ** 2;
    }
    m = Float64Array.from(next);
    if (Math.sqrt(move) <= tol * (1 + Math.sqrt(norm))) break;
  }
  return Float32Array.from(m);
}

/**
 * JumpReLU's initial θ for a target L0: with W_enc's columns random unit vectors a latent's
 * pre-activation over tokens is about N(0, σ²) with σ² = E‖x‖²/d_in, so θ = σ·Φ⁻¹(1 − L0/d_sae)
 * makes about L0 latents fire per token at the first step rather than d_sae/2 (peers start at
 * θ = 0.001 and let the penalty get there; train/scratch_defaults.ts asks for 8·target_l0).
 */
export function jumpThresholdFor(targetL0: number, dSae: number, sigma: number): number {
  if (!(targetL0 > 0 && targetL0 < dSae)) {
    throw new RangeError(`target L0 must be in (0, d_sae=${dSae}), got ${targetL0}`);
  }
  if (!(sigma > 0 && Number.isFinite(sigma))) {
    throw new RangeError(`σ must be a positive number, got ${sigma}`);
  }
  return sigma * normalQuantile(1 - targetL0 / dSae);
}

/** Φ⁻¹(p) by Acklam's rational approximation (relative error < 1.2e-9), 0 < p < 1. */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
