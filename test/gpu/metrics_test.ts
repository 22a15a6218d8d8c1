import { assert, assertEquals, assertThrows } from "@std/assert";
import { createBuffer, poison, upload } from "../../gpu/buffers.ts";
import {
  type Activations,
  FiringTracker,
  METRIC_NAMES,
  type Metrics,
  ReconstructionMetrics,
} from "../../gpu/metrics.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, type Rng } from "../util/rand.ts";

/** The metric definitions of gpu/metrics.ts, written out in float64. */
function metricsRef(x: Float32Array, xh: Float32Array, vals: Float32Array, N: number, d: number) {
  const mu = new Float64Array(d);
  for (let t = 0; t < N; t++) for (let j = 0; j < d; j++) mu[j] += x[t * d + j] / N;
  let err2 = 0, var2 = 0, hh = 0, xhs = 0, cos = 0, ratio = 0, l0 = 0;
  for (let t = 0; t < N; t++) {
    let e = 0, v = 0, a = 0, b = 0, c = 0;
    for (let j = 0; j < d; j++) {
      const xv = x[t * d + j], hv = xh[t * d + j];
      e += (xv - hv) ** 2;
      v += (xv - mu[j]) ** 2;
      a += xv * xv;
      b += hv * hv;
      c += xv * hv;
    }
    err2 += e;
    var2 += v;
    hh += b;
    xhs += c;
    cos += c / (Math.max(Math.sqrt(a), 1e-8) * Math.max(Math.sqrt(b), 1e-8));
    ratio += Math.sqrt(b) / (Math.sqrt(a) < 1e-4 ? 1 : Math.sqrt(a));
  }
  for (const v of vals) if (v !== 0) l0++;
  const fvu = err2 / var2;
  return {
    mse: err2 / (N * d),
    mseSumD: err2 / N,
    fvu,
    explainedVariance: 1 - fvu,
    cosSim: cos / N,
    l2Ratio: ratio / N,
    relativeReconstructionBias: hh / xhs,
    l0: l0 / N,
  } satisfies Metrics;
}

function batch(rng: Rng, N: number, d: number) {
  // A large shared offset: variance about zero would be far from variance about the mean.
  const offset = rng.normals(d, 3);
  const x = new Float32Array(N * d);
  const xh = new Float32Array(N * d);
  for (let t = 0; t < N; t++) {
    for (let j = 0; j < d; j++) {
      x[t * d + j] = offset[j] + rng.normal();
      xh[t * d + j] = 0.8 * x[t * d + j] + 0.3 * rng.normal();
    }
  }
  return { x, xh };
}

for (const kind of ["dense", "sparse"] as const) {
  Deno.test(`reconstruction metrics match float64 (${kind} activations)`, async () => {
    const { device } = await testGpu();
    const rng = freshRng(`metrics-${kind}`);
    const N = 37 + rng.int(40), d = 50 + rng.int(60), n = 300 + rng.int(100), k = 5 + rng.int(6);
    const { x, xh } = batch(rng, N, d);
    let vals: Float32Array;
    let acts: Activations;
    if (kind === "dense") {
      vals = Float32Array.from({ length: N * n }, () => rng.uniform() < 0.05 ? rng.uniform() : 0);
      acts = { kind, h: upload(device, vals), n };
    } else {
      vals = Float32Array.from({ length: N * k }, () => rng.uniform() < 0.2 ? 0 : rng.uniform());
      const idx = Uint32Array.from({ length: N * k }, () => rng.int(n));
      acts = { kind, idx: upload(device, idx), val: upload(device, vals), k };
    }
    const m = new ReconstructionMetrics(device, d, N + 5);
    poison(device, m.out);
    const got = await m.compute({
      x: upload(device, x),
      xHat: upload(device, xh),
      nTokens: N,
      acts,
    });
    const want = metricsRef(x, xh, vals, N, d);
    for (const name of METRIC_NAMES) {
      const rel = Math.abs(got[name] - want[name]) / Math.max(Math.abs(want[name]), 1e-6);
      assert(rel <= 1e-5, `${name}: got ${got[name]}, want ${want[name]} (rel ${rel})`);
    }
    // Variance about zero would give a far smaller FVU on this offset data.
    let sumX2 = 0;
    for (const v of x) sumX2 += v * v;
    assert(want.fvu > 2 * (want.mseSumD * N / sumX2), "test data does not separate the FVU bug");
    m.destroy();
  });
}

for (const kind of ["dense", "sparse"] as const) {
  Deno.test(`firing counts, tokens since fired and dead latents match a reference (${kind})`, async () => {
    const { device } = await testGpu();
    const rng = freshRng(`firing-${kind}`);
    // The window stays below the smallest token total (5 batches × 20), so latent 0 ends dead.
    const n = 200 + rng.int(100), k = 4 + rng.int(4), window = 60 + rng.int(40);
    const tracker = new FiringTracker(device, n, window);
    const counts = new Float64Array(n), since = new Float64Array(n);
    // Latent 0 never fires; latent 1 fires only in the first batch.
    for (let b = 0; b < 5; b++) {
      if (b === 3) {
        tracker.resetWindow();
        counts.fill(0);
      }
      const N = 20 + rng.int(30);
      const fired = new Float64Array(n);
      let acts: Activations;
      if (kind === "dense") {
        const h = new Float32Array(N * n);
        for (let t = 0; t < N; t++) {
          for (let i = 2; i < n; i++) if (rng.uniform() < 0.01) h[t * n + i] = rng.uniform() + 0.1;
          if (b === 0) h[t * n + 1] = 1;
        }
        for (let t = 0; t < N; t++) for (let i = 0; i < n; i++) if (h[t * n + i] !== 0) fired[i]++;
        acts = { kind, h: upload(device, h), n };
      } else {
        const idx = new Uint32Array(N * k), val = new Float32Array(N * k);
        for (let t = 0; t < N; t++) {
          for (let j = 0; j < k; j++) {
            idx[t * k + j] = b === 0 && j === 0 ? 1 : 2 + rng.int(n - 2);
            // Some zero values: a listed latent with value 0 did not fire.
            val[t * k + j] = rng.uniform() < 0.15 ? 0 : rng.uniform() + 0.1;
            if (b === 0 && j === 0) val[t * k + j] = 1;
            if (val[t * k + j] !== 0) fired[idx[t * k + j]]++;
          }
        }
        acts = { kind, idx: upload(device, idx), val: upload(device, val), k };
      }
      for (let i = 0; i < n; i++) {
        counts[i] += fired[i];
        since[i] = fired[i] > 0 ? 0 : since[i] + N;
      }
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      tracker.record(pass, N, acts);
      tracker.recordDeadCount(pass);
      pass.end();
      device.queue.submit([enc.finish()]);
      poison(device, tracker.deadOut);
      const enc2 = device.createCommandEncoder();
      const pass2 = enc2.beginComputePass();
      tracker.recordDeadCount(pass2);
      pass2.end();
      device.queue.submit([enc2.finish()]);
      assertEquals(Array.from(await tracker.readWindowCounts()), Array.from(counts), `batch ${b}`);
      assertEquals(
        Array.from(await tracker.readTokensSinceFired()),
        Array.from(since),
        `batch ${b}`,
      );
      const dead = since.filter((s) => s >= window).length;
      assertEquals(await tracker.readDead(), dead, `batch ${b} dead`);
    }
    assert(since[0] >= window, "latent 0 should be dead by the end");
    tracker.destroy();
  });
}

Deno.test("metrics: an x̂ shorter than nTokens·dIn is refused by name", async () => {
  const { device } = await testGpu();
  const m = new ReconstructionMetrics(device, 4, 8);
  const x = createBuffer(device, 32 * 4), xHat = createBuffer(device, 31 * 4);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assertThrows(
    () => m.record(pass, { x, xHat, nTokens: 8, acts: { kind: "dense", h: x, n: 4 } }),
    RangeError,
    "metrics: xHat holds 31 values, needs 32",
  );
  pass.end();
  for (const b of [x, xHat]) b.destroy();
  m.destroy();
});
