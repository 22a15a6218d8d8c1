// Skip adapters after the SAE: the identity at step 0 (bit-exact), and every gradient — parameters
// and ∂L/∂x̂ — against central finite differences of a float64 forward, with all parameters made
// non-zero so no gradient is trivially zero.
import { assertEquals, assertLess } from "@std/assert";
import { LinearSkip } from "../../train/adapters/linear_skip.ts";
import { MlpSkip } from "../../train/adapters/mlp_skip.ts";
import { HostAdamW } from "../../train/adapters/host_adamw.ts";
import type { SkipAdapter } from "../../train/adapters/types.ts";
import { centralDifferences } from "../util/fd.ts";
import { freshRng, relError } from "../util/rand.ts";

type P = Record<string, Float64Array>;

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

function check(
  make: () => SkipAdapter,
  ref: (p: P, x: Float64Array) => Float64Array,
  n: number,
  d: number,
  label: string,
) {
  const rng = freshRng(label);
  const xhat = rng.normals(n * d);
  const fresh = make();
  assertEquals(fresh.forward(xhat, n), xhat, `${label}: identity at step 0`);
  const a = make();
  for (const t of Object.values(a.params)) t.set(rng.normals(t.length, 0.5));
  const g = rng.normals(n * d); // L = Σ g·y
  a.forward(xhat, n);
  const { grads, dxhat } = a.backward(g);
  const p: P = Object.fromEntries(
    Object.entries(a.params).map(([k, v]) => [k, Float64Array.from(v)]),
  );
  const x64 = Float64Array.from(xhat);
  const loss = () => ref(p, x64).reduce((s, y, e) => s + g[e] * y, 0);
  const fd = (arr: Float64Array) => centralDifferences(arr, loss);
  for (const k of Object.keys(p)) assertLess(relError(grads[k], fd(p[k])), 1e-4, `${label}: ∂${k}`);
  assertLess(relError(dxhat, fd(x64)), 1e-4, `${label}: ∂x̂`);
}

Deno.test("linear skip y = x̂ + U·V·x̂: identity at step 0, gradients vs finite differences", () => {
  const n = 7, d = 9, r = 3;
  check(() => new LinearSkip(d, r, 1), (p, x) => linear64(p, x, n, d, r), n, d, "linear-skip");
});

Deno.test("MLP skip y = x̂ + W2·ReLU(W1·x̂ + b1) + b2: identity at step 0, gradients vs FD", () => {
  const n = 6, d = 8, h = 5;
  check(() => new MlpSkip(d, h, 2), (p, x) => mlp64(p, x, n, d, h), n, d, "mlp-skip");
});

Deno.test("host AdamW: one clipped step as torch's AdamW computes it", () => {
  const p = { w: Float32Array.of(1, -2) };
  const opt = new HostAdamW(p, { weightDecay: 0.1, clip: 1 });
  const norm = opt.step({ w: Float32Array.of(3, 4) }, 0.01);
  assertEquals(norm, 5);
  // Clipped gradient g = (0.6, 0.8)·(1/(1+2e-7)); after bias correction m̂/√v̂ = sign(g) on step 1.
  assertLess(Math.abs(p.w[0] - (1 * (1 - 0.001) - 0.01 * (1 - 1e-8 / 0.6))), 1e-6);
  assertLess(Math.abs(p.w[1] - (-2 * (1 - 0.001) - 0.01)), 1e-6);
});
