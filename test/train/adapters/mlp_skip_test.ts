import { MlpSkip } from "../../../train/adapters/mlp_skip.ts";
import { checkSkipAdapter, type P } from "./skip_check.ts";

function mlp64(p: P, x: Float64Array, n: number, d: number, h: number): Float64Array {
  const y = x.slice();
  for (let t = 0; t < n; t++) {
    for (let k = 0; k < h; k++) {
      let a = p.b1[k];
      for (let j = 0; j < d; j++) a += p.W1[k * d + j] * x[t * d + j];
      const r = Math.max(a, 0);
      for (let i = 0; i < d; i++) y[t * d + i] += p.W2[i * h + k] * r;
    }
    for (let i = 0; i < d; i++) y[t * d + i] += p.b2[i];
  }
  return y;
}

Deno.test("MLP skip y = x̂ + W2·ReLU(W1·x̂ + b1) + b2: identity at step 0, gradients vs FD", () => {
  const n = 6, d = 8, h = 5;
  checkSkipAdapter(() => new MlpSkip(d, h, 2), (p, x) => mlp64(p, x, n, d, h), n, d, "mlp-skip");
});
