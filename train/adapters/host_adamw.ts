// AdamW with global-norm clipping over host tensors (the adapters'), as torch.optim.AdamW with
// torch.nn.utils.clip_grad_norm_.

export class HostAdamW {
  t = 0;
  readonly m: Record<string, Float64Array> = {};
  readonly v: Record<string, Float64Array> = {};

  constructor(
    readonly params: Record<string, Float32Array>,
    readonly opts: {
      weightDecay: number;
      clip: number;
      beta1?: number;
      beta2?: number;
      eps?: number;
    },
  ) {
    for (const [k, p] of Object.entries(params)) {
      this.m[k] = new Float64Array(p.length);
      this.v[k] = new Float64Array(p.length);
    }
  }

  /** One step at lr; returns the gradient norm before clipping. */
  step(grads: Record<string, Float32Array>, lr: number): number {
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay, clip } = this.opts;
    let sq = 0;
    for (const k of Object.keys(this.params)) {
      const g = grads[k];
      if (!g || g.length !== this.params[k].length) {
        throw new Error(`adapter optimizer: gradient of ${k} is missing or the wrong size`);
      }
      for (const x of g) sq += x * x;
    }
    const norm = Math.sqrt(sq), scale = norm > clip ? clip / (norm + 1e-6) : 1;
    this.t++;
    const bc1 = 1 - beta1 ** this.t, bc2 = 1 - beta2 ** this.t;
    for (const [k, p] of Object.entries(this.params)) {
      const g = grads[k], m = this.m[k], v = this.v[k];
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * scale;
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        p[i] = p[i] * (1 - lr * weightDecay) - lr * (m[i] / bc1) / (Math.sqrt(v[i] / bc2) + eps);
      }
    }
    return norm;
  }
}
