// The check every skip adapter after the SAE passes: the identity at step 0 (bit-exact), and every
// gradient — parameters and ∂L/∂x̂ — against central finite differences of a float64 forward, with
// all parameters made non-zero so no gradient is trivially zero.
import { assertEquals, assertLess } from "@std/assert";
import type { SkipAdapter } from "../../../train/adapters/types.ts";
import { centralDifferences } from "../../util/fd.ts";
import { freshRng, relError } from "../../util/rand.ts";

export type P = Record<string, Float64Array>;

export function checkSkipAdapter(
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
