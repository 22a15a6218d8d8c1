// Small MLP skip after the SAE (paper Appendix C): y = x̂ + W2·ReLU(W1·x̂ + b1) + b2 per token, with
// W2 and b2 zero at the start (so y = x̂ exactly) and W1 random.
import { Rng } from "../../lib/rng.ts";
import { colSum, matmul, type SkipAdapter } from "./types.ts";

export class MlpSkip implements SkipAdapter {
  readonly kind = "mlp_skip";
  readonly params: { W1: Float32Array; b1: Float32Array; W2: Float32Array; b2: Float32Array };
  #xhat: Float32Array = new Float32Array(0);
  #a: Float32Array = new Float32Array(0);
  #r: Float32Array = new Float32Array(0);
  #n = 0;

  constructor(readonly d: number, readonly hidden: number, seed = 0) {
    if (!(Number.isInteger(hidden) && hidden >= 1)) {
      throw new RangeError(`mlp skip: hidden width must be a positive integer, got ${hidden}`);
    }
    const rng = new Rng(seed);
    const normal = () => rng.normal();
    this.params = {
      W1: Float32Array.from({ length: hidden * d }, () => normal() / Math.sqrt(d)),
      b1: new Float32Array(hidden),
      W2: new Float32Array(d * hidden),
      b2: new Float32Array(d),
    };
  }

  forward(xhat: Float32Array, n: number): Float32Array {
    const { d, hidden: h } = this, { W1, b1, W2, b2 } = this.params;
    this.#xhat = xhat;
    this.#n = n;
    const a = new Float32Array(n * h);
    for (let t = 0; t < n; t++) a.set(b1, t * h);
    this.#a = matmul(xhat, W1, n, d, h, { transB: true, into: a }); // x̂·W1ᵀ + b1
    this.#r = this.#a.map((v) => Math.max(v, 0));
    const y = xhat.slice();
    for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) y[t * d + i] += b2[i];
    return matmul(this.#r, W2, n, h, d, { transB: true, into: y });
  }

  backward(dy: Float32Array) {
    const { d, hidden: h } = this, n = this.#n, { W1, W2 } = this.params;
    const gW2 = matmul(dy, this.#r, d, n, h, { transA: true }); // [d, h]
    const gb2 = colSum(dy, n, d);
    const da = matmul(dy, W2, n, d, h); // ∂/∂r  [n, h]
    for (let e = 0; e < da.length; e++) if (!(this.#a[e] > 0)) da[e] = 0;
    const gW1 = matmul(da, this.#xhat, h, n, d, { transA: true }); // [h, d]
    const gb1 = colSum(da, n, h);
    const dxhat = matmul(da, W1, n, h, d, { into: dy.slice() });
    return { grads: { W1: gW1, b1: gb1, W2: gW2, b2: gb2 }, dxhat };
  }
}
