// Low-rank linear skip after the SAE (paper Appendix C): y = x̂ + U·V·x̂ per token, U [d, r] zero at
// the start (so y = x̂ exactly), V [r, d] random.
import { Rng } from "../../lib/rng.ts";
import { matmul, type SkipAdapter } from "./types.ts";

export class LinearSkip implements SkipAdapter {
  readonly kind = "linear_skip";
  readonly params: { U: Float32Array; V: Float32Array };
  #xhat: Float32Array = new Float32Array(0);
  #z: Float32Array = new Float32Array(0);
  #n = 0;

  constructor(readonly d: number, readonly rank: number, seed = 0) {
    if (!(Number.isInteger(rank) && rank >= 1 && rank <= d)) {
      throw new RangeError(`linear skip: rank must be in [1, d_in=${d}], got ${rank}`);
    }
    const rng = new Rng(seed);
    const normal = () => rng.normal();
    this.params = {
      U: new Float32Array(d * rank),
      V: Float32Array.from({ length: rank * d }, () => normal() / Math.sqrt(d)),
    };
  }

  forward(xhat: Float32Array, n: number): Float32Array {
    const { d, rank: r } = this, { U, V } = this.params;
    this.#xhat = xhat;
    this.#n = n;
    this.#z = matmul(xhat, V, n, d, r, { transB: true }); // z = x̂·Vᵀ  [n, r]
    return matmul(this.#z, U, n, r, d, { transB: true, into: xhat.slice() }); // x̂ + z·Uᵀ
  }

  backward(dy: Float32Array) {
    const { d, rank: r } = this, n = this.#n, { U, V } = this.params;
    const gU = matmul(dy, this.#z, d, n, r, { transA: true }); // dyᵀ·z  [d, r]
    const dz = matmul(dy, U, n, d, r); // [n, r]
    const gV = matmul(dz, this.#xhat, r, n, d, { transA: true }); // dzᵀ·x̂  [r, d]
    const dxhat = matmul(dz, V, n, r, d, { into: dy.slice() }); // dy + dz·V
    return { grads: { U: gU, V: gV }, dxhat };
  }
}
