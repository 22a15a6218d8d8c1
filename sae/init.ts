// SAE initialisation: decoder rows random unit vectors (seeded), encoder = decoder transpose,
// b_enc = 0, b_dec = geometric median (Weiszfeld) or mean of a sample of activations.
import type { Sae, SaeConfig } from "./types.ts";

/** mulberry32: a small seeded generator, so an init is reproducible from its seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface InitOptions {
  seed: number;
  /** b_dec; default zeros. Use geometricMedian() or mean() of a sample. */
  bDec?: Float32Array;
  /** jumprelu's initial per-latent threshold (default 0.001, as dictionary_learning). */
  threshold?: number;
}

export function initSae(cfg: SaeConfig, opts: InitOptions): Sae {
  const { dIn: d, dSae: n } = cfg;
  const u = seeded(opts.seed);
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
  // BatchTopK's inference threshold is unset (−1) until training has seen a batch.
  if (cfg.kind === "batchtopk") sae.weights.threshold = Float32Array.of(-1);
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
