import { LinearSkip } from "../../../train/adapters/linear_skip.ts";
import { checkSkipAdapter, type P } from "./skip_check.ts";

function linear64(p: P, x: Float64Array, n: number, d: number, r: number): Float64Array {
  const y = x.slice();
  for (let t = 0; t < n; t++) {
    for (let a = 0; a < r; a++) {
      let z = 0;
      for (let j = 0; j < d; j++) z += p.V[a * d + j] * x[t * d + j];
      for (let i = 0; i < d; i++) y[t * d + i] += p.U[i * r + a] * z;
    }
  }
  return y;
}

Deno.test("linear skip y = x̂ + U·V·x̂: identity at step 0, gradients vs finite differences", () => {
  const n = 7, d = 9, r = 3;
  checkSkipAdapter(
    () => new LinearSkip(d, r, 1),
    (p, x) => linear64(p, x, n, d, r),
    n,
    d,
    "linear-skip",
  );
});
