import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import { auxkResidual } from "../../sae/auxk.ts";
import { centralDifferences } from "../util/fd.ts";
import { freshRng } from "../util/rand.ts";

function loss64(t: number[], xh: number[], eh: number[], n: number, d: number, coef: number) {
  const e = t.map((v, q) => v - xh[q]);
  const mean = Array.from({ length: d }, (_, j) => {
    let s = 0;
    for (let r = 0; r < n; r++) s += e[r * d + j];
    return s / n;
  });
  let total = 0, se = 0;
  e.forEach((v, q) => {
    total += (v - mean[q % d]) ** 2;
    se += (eh[q] - v) ** 2;
  });
  return coef * se / total;
}

Deno.test("auxk: the loss is coef·‖ê − e‖²/Σ‖e − ē‖², its gradient in ê matches finite differences", () => {
  const rng = freshRng("auxk");
  const n = 7, d = 5, coef = 1 / 32;
  const r = () => Array.from(rng.normals64(n * d));
  const t = r(), xh = r(), eh = rng.normals64(n * d);
  const de = new Float32Array(n * d).fill(NaN);
  const loss = auxkResidual(t, xh, eh, n, d, coef, de);
  const ref = () => loss64(t, xh, Array.from(eh), n, d, coef);
  assertAlmostEquals(loss!, ref(), 1e-12);
  const fd = centralDifferences(eh, ref, 1e-5);
  fd.forEach((g, q) =>
    assert(Math.abs(de[q] - g) < 1e-6 + 1e-4 * Math.abs(g), `∂/∂ê[${q}]: ${de[q]} vs ${g}`)
  );
});

Deno.test("auxk: a residual without variance gives null and leaves the gradient alone", () => {
  const n = 3, d = 2;
  const t = [1, 2, 1, 2, 1, 2], xh = new Array(n * d).fill(0.5), eh = new Array(n * d).fill(0);
  const de = new Float32Array(n * d).fill(7);
  assertEquals(auxkResidual(t, xh, eh, n, d, 1, de), null);
  assertEquals([...de], new Array(n * d).fill(7));
});
