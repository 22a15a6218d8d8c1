import { assert, assertEquals, assertNotEquals } from "@std/assert";
import { geometricMedian, initSae, mean } from "../../sae/init.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("initSae: unit decoder rows, W_enc = W_decᵀ exactly, reproducible from the seed", () => {
  const rng = freshRng("init");
  const d = 10 + rng.int(20), n = 30 + rng.int(30), seed = rng.int(1e9);
  const bDec = rng.normals(d);
  const sae = initSae({ kind: "jumprelu", dIn: d, dSae: n }, { seed, bDec });
  const w = sae.weights;
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) {
      ss += w.W_dec[i * d + j] ** 2;
      assertEquals(w.W_enc[j * n + i], w.W_dec[i * d + j]);
    }
    assert(Math.abs(Math.sqrt(ss) - 1) < 1e-6, `row ${i} norm ${Math.sqrt(ss)}`);
  }
  assert(w.b_enc.every((v) => v === 0));
  assertEquals(w.b_dec, bDec);
  assertEquals(w.threshold?.length, n);
  assertEquals(initSae(sae.cfg, { seed, bDec }).weights.W_dec, w.W_dec);
  assertNotEquals(initSae(sae.cfg, { seed: seed + 1 }).weights.W_dec, w.W_dec);
  // Directions are spread out: mean |cosine| between rows is small.
  let cos = 0, pairs = 0;
  for (let a = 0; a < Math.min(n, 20); a++) {
    for (let b = a + 1; b < Math.min(n, 20); b++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += w.W_dec[a * d + j] * w.W_dec[b * d + j];
      cos += Math.abs(dot);
      pairs++;
    }
  }
  assert(cos / pairs < 0.5, `mean |cos| ${cos / pairs}`);
});

Deno.test("geometric median: zero subgradient at the result, robust to outliers, 1-D median", () => {
  const rng = freshRng("geomedian");
  const d = 5 + rng.int(5), N = 200 + rng.int(50);
  const centre = rng.normals(d, 3);
  const x = new Float32Array(N * d);
  for (let t = 0; t < N; t++) {
    const outlier = t < N / 10;
    for (let j = 0; j < d; j++) x[t * d + j] = centre[j] + rng.normal() + (outlier ? 1000 : 0);
  }
  const m = geometricMedian(x, d, { maxIter: 500, tol: 1e-12 });
  // The gradient of Σ‖x_t − m‖ vanishes at the geometric median.
  const g = new Float64Array(d);
  for (let t = 0; t < N; t++) {
    let dist = 0;
    for (let j = 0; j < d; j++) dist += (x[t * d + j] - m[j]) ** 2;
    dist = Math.sqrt(dist);
    for (let j = 0; j < d; j++) g[j] += (m[j] - x[t * d + j]) / dist;
  }
  const gn = Math.sqrt(g.reduce((s, v) => s + v * v, 0));
  assert(gn < 1e-3 * N, `|∇| = ${gn}`);
  const mu = mean(x, d);
  let dm = 0, dmu = 0;
  for (let j = 0; j < d; j++) {
    dm += (m[j] - centre[j]) ** 2;
    dmu += (mu[j] - centre[j]) ** 2;
  }
  assert(
    Math.sqrt(dm) < 1 && Math.sqrt(dmu) > 50,
    `median off by ${Math.sqrt(dm)}, mean by ${Math.sqrt(dmu)}`,
  );
  // In one dimension with an odd count it is the ordinary median.
  const line = Float32Array.from([5, -1, 2, 100, 3]);
  assert(Math.abs(geometricMedian(line, 1, { maxIter: 1000, tol: 1e-14 })[0] - 3) < 1e-3);
});
