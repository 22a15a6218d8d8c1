// A plain float64 reference of one fine-tune step (paper Eq. 8–9) for a TopK SAE spliced into a
// toy "LM suffix" that is one linear map to logits (logits = x̂·U), so that ∂KL/∂x̂ has a closed
// form: (softmax(x̂U) − p_clean)·Uᵀ / N. Everything is written out loop by loop on purpose.

export interface Sae64 {
  dIn: number;
  dSae: number;
  k: number;
  /** topk (default) keeps the k largest; relu keeps every positive pre-activation. */
  kind?: "topk" | "relu";
  W_enc: Float64Array; // [dIn, dSae]
  b_enc: Float64Array;
  W_dec: Float64Array; // [dSae, dIn]
  b_dec: Float64Array;
}

export interface Adam64 {
  m: Record<string, Float64Array>;
  v: Record<string, Float64Array>;
  t: number;
}

export interface StepOptions {
  objective: "mse" | "kl_mse" | "e2e" | "kl_only";
  lr: number;
  weightDecay: number;
  clip: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /**
   * Instead of the linear suffix's KL gradient, use ∂/∂x̂ = wMse·∂mse/∂x̂ + wExt·g (g from an LM);
   * this is how the loop combines the two terms.
   */
  extraGrad?: { g: Float64Array | null; wMse: number; wExt: number };
  /** relu: λ of the decoder-norm-weighted L1, λ·(1/N)·Σ_t Σ_j h_tj·‖W_dec,j‖ (paper Eq. 4). */
  l1?: number;
}

function logSoftmax(z: Float64Array): Float64Array {
  let mx = -Infinity;
  for (const v of z) mx = Math.max(mx, v);
  let s = 0;
  for (const v of z) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  return z.map((v) => v - lse);
}

export function topkForward(sae: Sae64, x: Float64Array, n: number) {
  const { dIn: d, dSae: m, k } = sae;
  const pre = new Float64Array(n * m);
  const h = new Float64Array(n * m);
  const active = new Uint8Array(n * m);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < m; j++) {
      let s = sae.b_enc[j];
      for (let i = 0; i < d; i++) s += (x[t * d + i] - sae.b_dec[i]) * sae.W_enc[i * m + j];
      pre[t * m + j] = s;
    }
    const order = Array.from({ length: m }, (_, j) => j).sort((a, b) =>
      pre[t * m + b] - pre[t * m + a]
    );
    for (const j of sae.kind === "relu" ? order : order.slice(0, k)) {
      if (pre[t * m + j] > 0) {
        h[t * m + j] = pre[t * m + j];
        active[t * m + j] = 1;
      }
    }
  }
  const xhat = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) {
      let s = sae.b_dec[i];
      for (let j = 0; j < m; j++) s += h[t * m + j] * sae.W_dec[j * d + i];
      xhat[t * d + i] = s;
    }
  }
  return { pre, h, active, xhat };
}

/** KL(p_clean ‖ softmax(x̂U)) per token and its mean's gradient w.r.t. x̂. */
export function linearSuffixKl(
  xhat: Float64Array,
  U: Float64Array,
  lpClean: Float64Array,
  n: number,
  d: number,
  V: number,
) {
  const kl = new Float64Array(n);
  const grad = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    const z = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += xhat[t * d + i] * U[i * V + v];
      z[v] = s;
    }
    const lps = logSoftmax(z);
    let klt = 0;
    for (let v = 0; v < V; v++) {
      const pc = Math.exp(lpClean[t * V + v]);
      klt += pc * (lpClean[t * V + v] - lps[v]);
    }
    kl[t] = klt;
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let v = 0; v < V; v++) {
        s += (Math.exp(lps[v]) - Math.exp(lpClean[t * V + v])) * U[i * V + v];
      }
      grad[t * d + i] = s / n;
    }
  }
  return { kl, klMean: kl.reduce((a, b) => a + b, 0) / n, grad };
}

/** One step: forward, Eq. 8–9 loss with α detached, backward, global-norm clip, AdamW (torch). */
export function referenceStep(
  sae: Sae64,
  adam: Adam64,
  x: Float64Array,
  U: Float64Array,
  lpClean: Float64Array,
  n: number,
  V: number,
  opt: StepOptions,
) {
  const { dIn: d, dSae: m } = sae;
  const fwd = topkForward(sae, x, n);
  let mse = 0;
  for (let e = 0; e < n * d; e++) mse += (fwd.xhat[e] - x[e]) ** 2;
  mse /= n * d;
  const klr = opt.extraGrad
    ? { klMean: 0, grad: new Float64Array(n * d) }
    : linearSuffixKl(fwd.xhat, U, lpClean, n, d, V);
  const w = opt.objective === "mse"
    ? { mse: 1, kl: 0, alpha: 0 }
    : opt.objective === "kl_mse"
    ? { mse: 0.5, kl: 0.5 * mse / (klr.klMean + 1e-8), alpha: mse / (klr.klMean + 1e-8) }
    : opt.objective === "e2e"
    ? { mse: 1, kl: 1, alpha: 1 }
    : { mse: 0, kl: 1, alpha: 1 };
  const dx = new Float64Array(n * d);
  for (let e = 0; e < n * d; e++) {
    dx[e] = opt.extraGrad
      ? opt.extraGrad.wMse * 2 * (fwd.xhat[e] - x[e]) / (n * d) +
        opt.extraGrad.wExt * (opt.extraGrad.g?.[e] ?? 0)
      : w.mse * 2 * (fwd.xhat[e] - x[e]) / (n * d) + w.kl * klr.grad[e];
  }
  const g = {
    W_enc: new Float64Array(d * m),
    b_enc: new Float64Array(m),
    W_dec: new Float64Array(m * d),
    b_dec: new Float64Array(d),
  };
  const lam = sae.kind === "relu" ? (opt.l1 ?? 0) : 0;
  const norms = new Float64Array(m);
  for (let j = 0; j < m; j++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += sae.W_dec[j * d + i] ** 2;
    norms[j] = Math.sqrt(s);
  }
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) g.b_dec[i] += dx[t * d + i];
    for (let j = 0; j < m; j++) {
      const hj = fwd.h[t * m + j];
      // The L1 term: ∂/∂h_tj = λ‖W_dec,j‖/N, and ∂/∂W_dec,j = λ·h_tj·W_dec,j/(‖W_dec,j‖·N).
      let dh = lam * norms[j] / n;
      for (let i = 0; i < d; i++) {
        g.W_dec[j * d + i] += lam * hj * sae.W_dec[j * d + i] / (Math.max(norms[j], 1e-12) * n);
      }
      for (let i = 0; i < d; i++) {
        g.W_dec[j * d + i] += hj * dx[t * d + i];
        dh += dx[t * d + i] * sae.W_dec[j * d + i];
      }
      if (!fwd.active[t * m + j]) continue;
      g.b_enc[j] += dh;
      for (let i = 0; i < d; i++) {
        g.W_enc[i * m + j] += (x[t * d + i] - sae.b_dec[i]) * dh;
        g.b_dec[i] -= dh * sae.W_enc[i * m + j];
      }
    }
  }
  let sq = 0;
  for (const a of Object.values(g)) for (const v of a) sq += v * v;
  const norm = Math.sqrt(sq);
  const scale = Math.min(1, opt.clip / (norm + 1e-6));
  const b1 = opt.beta1 ?? 0.9, b2 = opt.beta2 ?? 0.999, eps = opt.eps ?? 1e-8;
  adam.t += 1;
  for (const [name, grad] of Object.entries(g) as [keyof typeof g, Float64Array][]) {
    const p = sae[name];
    const mm = adam.m[name] ??= new Float64Array(p.length);
    const vv = adam.v[name] ??= new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) {
      const gi = grad[i] * scale;
      p[i] -= opt.lr * opt.weightDecay * p[i];
      mm[i] = b1 * mm[i] + (1 - b1) * gi;
      vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
      const mh = mm[i] / (1 - b1 ** adam.t), vh = vv[i] / (1 - b2 ** adam.t);
      p[i] -= opt.lr * mh / (Math.sqrt(vh) + eps);
    }
  }
  return {
    mse,
    kl: klr.klMean,
    alpha: w.alpha,
    gradNorm: norm,
    grads: g,
    xhat: fwd.xhat,
    h: fwd.h,
  };
}
