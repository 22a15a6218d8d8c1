// The sparse TopK SAE kernels (shaders/sae_sparse.wgsl) against float64 on random shapes: decode,
// dval, the latent index (offsets and per-bucket order exactly), the weight gradients written and
// accumulated, and the dead-latent mask; outputs poisoned with NaN first.
import { assert, assertEquals } from "@std/assert";
import { createBuffer, poison, readF32, readU32, upload, write } from "../../gpu/buffers.ts";
import { type Rec, submitPass, UniformArena } from "../../gpu/kernel.ts";
import * as sp from "../../gpu/sae_sparse.ts";
import { assertPassRefused, testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError, type Rng } from "../util/rand.ts";

function close(got: ArrayLike<number>, want: Float64Array, what: string, atol = 1e-5) {
  const e = maxScaledError(got, want, 1e-5, atol);
  assert(e <= 1, `${what}: scaled error ${e}`);
}

/** k distinct latents per token in index order, values ReLU-like (some exact zeros). */
function selection(rng: Rng, n: number, m: number, k: number) {
  const idx = new Uint32Array(n * k), val = new Float32Array(n * k);
  for (let t = 0; t < n; t++) {
    const pick = new Set<number>();
    // Few latents in some draws so buckets hold many tokens.
    const pool = rng.uniform() < 0.5 ? m : Math.min(m, k + rng.int(4));
    while (pick.size < k) pick.add(rng.int(pool));
    [...pick].sort((a, b) => a - b).forEach((j, s) => {
      idx[t * k + s] = j;
      val[t * k + s] = rng.uniform() < 0.2 ? 0 : rng.uniform() + 0.01;
    });
  }
  return { idx, val };
}

async function checkShape(rng: Rng, dims: sp.SparseDims) {
  const { n, d, m, k } = dims;
  const tag = `n=${n} d=${d} m=${m} k=${k}`;
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  const run = (label: string, f: (r: Rec) => void, before?: (e: GPUCommandEncoder) => void) =>
    submitPass(device, uniforms, label, f, before);
  const { idx, val } = selection(rng, n, m, k);
  const W = rng.normals(m * d),
    b = rng.normals(d),
    dx = rng.normals(n * d),
    xc = rng.normals(n * d);
  const dvHost = rng.normals(n * k);
  const g = {
    idx: upload(device, idx),
    val: upload(device, val),
    W: upload(device, W),
    b: upload(device, b),
    dx: upload(device, dx),
    xc: upload(device, xc),
    dval: upload(device, dvHost),
    out: createBuffer(device, Math.max(n * d, m * d) * 4),
    dvOut: createBuffer(device, n * k * 4),
  };
  // decode
  poison(device, g.out);
  run(
    "decode",
    (r) => sp.decode(r, { idx: g.idx, val: g.val, W_dec: g.W, b: g.b, out: g.out }, dims),
  );
  const want = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) {
      let s = b[i];
      for (let q = 0; q < k; q++) s += val[t * k + q] * W[idx[t * k + q] * d + i];
      want[t * d + i] = s;
    }
  }
  close(await readF32(device, g.out, n * d), want, `decode ${tag}`, 1e-5 * Math.sqrt(k));
  // dval
  poison(device, g.dvOut);
  run(
    "dval",
    (r) => sp.dval(r, { idx: g.idx, val: g.val, dx: g.dx, W_dec: g.W, out: g.dvOut }, dims),
  );
  const wantDv = new Float64Array(n * k);
  for (let e = 0; e < n * k; e++) {
    if (!(val[e] > 0)) continue;
    const t = Math.floor(e / k);
    for (let i = 0; i < d; i++) wantDv[e] += dx[t * d + i] * W[idx[e] * d + i];
  }
  close(await readF32(device, g.dvOut, n * k), wantDv, `dval ${tag}`, 1e-5 * Math.sqrt(d));
  // index + gradients, written then accumulated
  const index = {
    count: createBuffer(device, m * 4),
    offs: createBuffer(device, (m + 1) * 4),
    cursor: createBuffer(device, m * 4),
    list: createBuffer(device, n * k * 4),
  };
  const gW_dec = createBuffer(device, m * d * 4), gW_enc = createBuffer(device, d * m * 4);
  const gb_enc = createBuffer(device, m * 4);
  const wantDec = new Float64Array(m * d), wantEnc = new Float64Array(d * m);
  const wantB = new Float64Array(m);
  for (let e = 0; e < n * k; e++) {
    if (!(val[e] > 0)) continue;
    const t = Math.floor(e / k), j = idx[e];
    wantB[j] += dvHost[e];
    for (let i = 0; i < d; i++) {
      wantDec[j * d + i] += val[e] * dx[t * d + i];
      wantEnc[i * m + j] += dvHost[e] * xc[t * d + i];
    }
  }
  const tol = 1e-5 * Math.sqrt(n);
  for (const accumulate of [false, true]) {
    const init = accumulate ? [rng.normals(m * d), rng.normals(d * m), rng.normals(m)] : null;
    for (const [i, buf] of [gW_dec, gW_enc, gb_enc].entries()) {
      if (init) write(device, buf, init[i]);
      else poison(device, buf);
    }
    for (const buf of [index.offs, index.list]) poison(device, buf);
    run("grads", (r) =>
      sp.sparseGrads(
        r,
        {
          idx: g.idx,
          val: g.val,
          dval: g.dval,
          dx: g.dx,
          xc: g.xc,
          index,
          gW_dec,
          gW_enc,
          gb_enc,
        },
        dims,
        accumulate,
      ), (enc) => {
      enc.clearBuffer(index.count);
      enc.clearBuffer(index.cursor);
    });
    const add = (w: Float64Array, j: number) => init ? w.map((v, q) => v + init[j][q]) : w;
    close(
      await readF32(device, gW_dec, m * d),
      add(wantDec, 0),
      `∂W_dec acc=${accumulate} ${tag}`,
      tol,
    );
    close(
      await readF32(device, gW_enc, d * m),
      add(wantEnc, 1),
      `∂W_enc acc=${accumulate} ${tag}`,
      tol,
    );
    close(await readF32(device, gb_enc, m), add(wantB, 2), `∂b_enc acc=${accumulate} ${tag}`, tol);
  }
  // The index itself: bucket starts and each bucket's entries in increasing order.
  const buckets: number[][] = Array.from({ length: m }, () => []);
  for (let e = 0; e < n * k; e++) if (val[e] > 0) buckets[idx[e]].push(e);
  const offs = [0];
  for (const bk of buckets) offs.push(offs.at(-1)! + bk.length);
  assertEquals([...await readU32(device, index.offs, m + 1)], offs, `offsets ${tag}`);
  assertEquals([...await readU32(device, index.list, offs[m])], buckets.flat(), `list ${tag}`);
  // mask_dead
  const since = Uint32Array.from({ length: m }, () => rng.int(20)), window = 1 + rng.int(19);
  const pre = rng.normals(n * m), gpre = upload(device, pre), gsince = upload(device, since);
  const masked = createBuffer(device, n * m * 4);
  poison(device, masked);
  run("mask", (r) => sp.maskDead(r, { pre: gpre, since: gsince, out: masked }, { n, m, window }));
  const wantMask = Float64Array.from(
    pre,
    (v, e) => since[e % m] >= window ? v : -3.4028234663852886e38,
  );
  close(await readF32(device, masked, n * m), wantMask, `mask_dead ${tag}`, 0);
  for (const buf of [...Object.values(g), ...Object.values(index), gW_dec, gW_enc, gb_enc]) {
    buf.destroy();
  }
  for (const buf of [gpre, gsince, masked]) buf.destroy();
  uniforms.destroy();
}

Deno.test("sae_sparse: every entry vs float64 on random shapes", async () => {
  const rng = freshRng("sae_sparse");
  for (let trial = 0; trial < 5; trial++) {
    const m = 1 + rng.int(trial < 2 ? 40 : 3000);
    const k = 1 + rng.int(Math.min(m, 32));
    await checkShape(rng, { n: 1 + rng.int(70), d: 1 + rng.int(100), m, k });
  }
});

Deno.test("sae_sparse: a short buffer is refused by name", async () => {
  const { device } = await testGpu();
  const big = createBuffer(device, 4096), out = createBuffer(device, 4 * 4 * 8 - 4);
  assertPassRefused(
    device,
    (r) =>
      sp.decode(r, { idx: big, val: big, W_dec: big, b: big, out }, { n: 4, d: 8, m: 8, k: 2 }),
    "sae_sparse.decode: out holds 31 values, needs 32 (n=4 d=8 m=8 k=2)",
  );
  big.destroy();
  out.destroy();
});
