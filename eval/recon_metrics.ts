// Reconstruction metrics pooled over every evaluated token (as SAELens and SAEBench define them),
// accumulated in float64 batch by batch. FVU is about the data's mean, not about zero (SAELens
// issue #659): Σ‖x−x̂‖² / Σ‖x−μ‖², with Σ‖x−μ‖² = Σ‖x‖² − N‖μ‖² from running sums.

export type Activations =
  | { kind: "sparse"; idx: Uint32Array; val: Float32Array; k: number }
  | { kind: "dense"; h: Float32Array; n: number };

export interface ReconMetrics {
  tokens: number;
  mse: number;
  fvu: number;
  explainedVariance: number;
  cosSim: number;
  l2Ratio: number;
  /** E[‖x̂‖²] / E[x·x̂] (SAEBench; < 1 means shrinkage). */
  relativeReconstructionBias: number;
  l0: number | null;
  /** Fraction of latents that fired at least once over the evaluation. */
  aliveFraction: number | null;
  /** Histogram of log10 firing density per latent: bins of width 0.5 from −8 to 0, dead latents apart. */
  density: { dead: number; edges: number[]; counts: number[] } | null;
}

export class ReconAccumulator {
  #n = 0;
  #sqErr = 0;
  #sumX: Float64Array;
  #sumSqX = 0;
  #cos = 0;
  #ratio = 0;
  #xhatSq = 0;
  #dot = 0;
  #active = 0;
  #fired: Float64Array | null = null;

  constructor(readonly d: number, readonly dSae?: number) {
    this.#sumX = new Float64Array(d);
    if (dSae) this.#fired = new Float64Array(dSae);
  }

  /** x, x̂: [n, d]; `keep` (length n) leaves tokens out when 0. */
  add(x: Float32Array, xhat: Float32Array, acts?: Activations, keep?: Uint8Array): void {
    const d = this.d, n = x.length / d;
    if (xhat.length !== x.length) {
      throw new RangeError(`reconstruction has ${xhat.length} values, activations ${x.length}`);
    }
    for (let t = 0; t < n; t++) {
      if (keep && !keep[t]) continue;
      let e = 0, xx = 0, hh = 0, xh = 0;
      for (let i = 0; i < d; i++) {
        const a = x[t * d + i], b = xhat[t * d + i];
        e += (a - b) ** 2;
        xx += a * a;
        hh += b * b;
        xh += a * b;
        this.#sumX[i] += a;
      }
      this.#n++;
      this.#sqErr += e;
      this.#sumSqX += xx;
      this.#xhatSq += hh;
      this.#dot += xh;
      this.#cos += xh / Math.max(Math.sqrt(xx * hh), 1e-30);
      this.#ratio += Math.sqrt(hh) / Math.max(Math.sqrt(xx), 1e-30);
      if (acts) this.#countActive(acts, t);
    }
  }

  #countActive(acts: Activations, t: number): void {
    if (acts.kind === "sparse") {
      for (let j = 0; j < acts.k; j++) {
        if (acts.val[t * acts.k + j] > 0) {
          this.#active++;
          if (this.#fired) this.#fired[acts.idx[t * acts.k + j]]++;
        }
      }
    } else {
      for (let j = 0; j < acts.n; j++) {
        if (acts.h[t * acts.n + j] > 0) {
          this.#active++;
          if (this.#fired) this.#fired[j]++;
        }
      }
    }
  }

  result(withActs: boolean): ReconMetrics {
    const n = Math.max(this.#n, 1);
    let muSq = 0;
    for (const s of this.#sumX) muSq += (s / n) ** 2;
    const totalVar = this.#sumSqX - n * muSq;
    const fvu = this.#sqErr / Math.max(totalVar, 1e-30);
    let density: ReconMetrics["density"] = null, alive: number | null = null;
    if (withActs && this.#fired) {
      const edges = Array.from({ length: 17 }, (_, i) => -8 + i * 0.5);
      const counts = new Array(16).fill(0);
      let dead = 0;
      for (const f of this.#fired) {
        if (f === 0) {
          dead++;
          continue;
        }
        const b = Math.min(15, Math.max(0, Math.floor((Math.log10(f / n) + 8) / 0.5)));
        counts[b]++;
      }
      density = { dead, edges, counts };
      alive = 1 - dead / this.#fired.length;
    }
    return {
      tokens: this.#n,
      mse: this.#sqErr / (n * this.d),
      fvu,
      explainedVariance: 1 - fvu,
      cosSim: this.#cos / n,
      l2Ratio: this.#ratio / n,
      relativeReconstructionBias: this.#xhatSq / Math.max(this.#dot, 1e-30),
      l0: withActs ? this.#active / n : null,
      aliveFraction: alive,
      density,
    };
  }
}
