// The CPU TopK trainer's host loops over typed arrays, each over a range of rows so the trainer can
// split one between the main thread and its helper worker (sae/cpu/helper.ts). Sums run in float64
// and each result is rounded to float32 once.

/** out[t, i] = bias[i] + Σ_s val[t, s]·W_dec[idx[t, s], i] for tokens t in [t0, t1). */
export function decodeRows(
  a: {
    idx: Int32Array;
    val: Float32Array;
    W_dec: Float32Array;
    bias: Float32Array;
    out: Float32Array;
  },
  d: number,
  k: number,
  t0: number,
  t1: number,
): void {
  const { idx, val, W_dec, bias, out } = a;
  const acc = new Float64Array(d);
  for (let t = t0; t < t1; t++) {
    for (let i = 0; i < d; i++) acc[i] = bias[i];
    for (let s = 0; s < k; s++) {
      const v = val[t * k + s];
      if (v === 0) continue;
      const r = idx[t * k + s] * d;
      for (let i = 0; i < d; i++) acc[i] += v * W_dec[r + i];
    }
    out.set(acc, t * d);
  }
}

/**
 * The latent → entries index of (idx, val) [n, k]: the entries e = t·k + s with val > 0 of latent j
 * are list[offs[j] .. offs[j+1]), in increasing e (a stable counting sort).
 */
export function latentIndex(
  idx: Int32Array,
  val: Float32Array,
  m: number,
  alloc: (n: number) => Int32Array,
): { offs: Int32Array; list: Int32Array } {
  const offs = alloc(m + 1);
  for (let e = 0; e < idx.length; e++) if (val[e] > 0) offs[idx[e] + 1]++;
  for (let j = 0; j < m; j++) offs[j + 1] += offs[j];
  const list = alloc(offs[m]), cursor = offs.slice(0, m);
  for (let e = 0; e < idx.length; e++) if (val[e] > 0) list[cursor[idx[e]]++] = e;
  return { offs, list };
}

/** The latent where the index's entries split in two halves (for two threads). */
export function splitLatent(offs: Int32Array): number {
  const m = offs.length - 1, half = offs[m] / 2;
  let lo = 0, hi = m;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (offs[mid] < half) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * For latents j in [j0, j1), the gradients of Σ⟨dx̂, decode(idx, val)⟩ through the selected
 * entries (val > 0: ∂ through the ReLU), written, or with `accumulate` added:
 *   ∂W_dec[j] = Σ val·dx̂[t],  ∂W_enc[:, j] = Σ dval·xc[t] (W_enc's transposed row),  ∂b_enc[j] = Σ dval
 * over j's entries in token order (as the GPU's latent → entries index sums them), with
 * dval = dx̂[t]·W_dec[j]. Each gradient row is written once and stays in cache while it is summed.
 */
export function sparseGradRows(
  a: {
    offs: Int32Array;
    list: Int32Array;
    val: Float32Array;
    dx: Float32Array;
    xc: Float32Array;
    W_dec: Float32Array;
    gW_dec: Float32Array;
    gW_enc_t: Float32Array;
    gb_enc: Float32Array;
  },
  d: number,
  k: number,
  j0: number,
  j1: number,
  accumulate: boolean,
): void {
  const { offs, list, val, dx, xc, W_dec, gW_dec: gWd, gW_enc_t: gWe, gb_enc: gb } = a;
  const accD = new Float64Array(d), accE = new Float64Array(d);
  for (let j = j0; j < j1; j++) {
    const r = j * d, lo = offs[j], hi = offs[j + 1];
    if (lo === hi) {
      if (!accumulate) {
        gWd.fill(0, r, r + d);
        gWe.fill(0, r, r + d);
        gb[j] = 0;
      }
      continue;
    }
    accD.fill(0);
    accE.fill(0);
    let accB = 0;
    for (let q = lo; q < hi; q++) {
      const e = list[q], o = ((e / k) | 0) * d, v = val[e];
      let dv = 0;
      for (let i = 0; i < d; i++) dv += dx[o + i] * W_dec[r + i];
      dv = Math.fround(dv);
      for (let i = 0; i < d; i++) {
        accD[i] += v * dx[o + i];
        accE[i] += dv * xc[o + i];
      }
      accB += dv;
    }
    if (accumulate) {
      for (let i = 0; i < d; i++) {
        gWd[r + i] += accD[i];
        gWe[r + i] += accE[i];
      }
      gb[j] += accB;
    } else {
      gWd.set(accD, r);
      gWe.set(accE, r);
      gb[j] = accB;
    }
  }
}

/** g_j ← g_j − (g_j·w_j/‖w_j‖²)·w_j for every row (zero rows left as they are). */
export function removeParallel(W: Float32Array, g: Float32Array, d: number): void {
  for (let r = 0; r < W.length; r += d) {
    let gw = 0, ww = 0;
    for (let i = 0; i < d; i++) {
      gw += g[r + i] * W[r + i];
      ww += W[r + i] * W[r + i];
    }
    if (!(ww > 0)) continue;
    const c = gw / ww;
    for (let i = 0; i < d; i++) g[r + i] -= c * W[r + i];
  }
}

/** w_j ← w_j/‖w_j‖ for every row (zero rows left as they are). */
export function normalizeRows(W: Float32Array, d: number): void {
  for (let r = 0; r < W.length; r += d) {
    let ww = 0;
    for (let i = 0; i < d; i++) ww += W[r + i] * W[r + i];
    if (!(ww > 0)) continue;
    const inv = 1 / Math.sqrt(ww);
    for (let i = 0; i < d; i++) W[r + i] *= inv;
  }
}

export function sumOfSquares(a: Float32Array): number {
  let s = 0;
  for (let q = 0; q < a.length; q++) s += a[q] * a[q];
  return s;
}

/** One step's scalars, float32 as the AdamW kernel's uniforms (gpu/adamw.ts). */
export interface AdamScalars {
  b1: number;
  b2: number;
  omb1: number;
  omb2: number;
  eps: number;
  decay: number;
  step: number;
  invSqrtBc2: number;
  /** The clip factor applied to every gradient. */
  gscale: number;
}

/** One AdamW step as shaders/adamw.wgsl, on g·gscale. */
export function adamw(
  p: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  h: AdamScalars,
): void {
  const { b1, b2, omb1, omb2, eps, decay, step, invSqrtBc2, gscale } = h;
  const f32 = Math.fround;
  for (let q = 0; q < p.length; q++) {
    const g = grad[q] * gscale;
    // The moments rounded as stored (f32), as the kernel uses them.
    const mq = f32(b1 * m[q] + omb1 * g), vq = f32(b2 * v[q] + omb2 * g * g);
    m[q] = mq;
    v[q] = vq;
    p[q] = p[q] * decay - step * mq / (Math.sqrt(vq) * invSqrtBc2 + eps);
  }
}
