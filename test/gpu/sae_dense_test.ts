// Every entry of shaders/sae_dense.wgsl against float64 on random shapes (workgroup-size
// non-multiples, one grid past 65535 workgroups), outputs poisoned with NaN first; wrong-size
// buffers refused by name.
import { assert, assertEquals } from "@std/assert";
import { createBuffer, poison, readF32, upload, write } from "../../gpu/buffers.ts";
import { submitPass, UniformArena } from "../../gpu/kernel.ts";
import * as dense from "../../gpu/sae_dense.ts";
import { assertPassRefused, testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError, type Rng } from "../util/rand.ts";

function close(got: Float32Array, want: Float64Array, what: string, rtol = 1e-5, atol = 1e-5) {
  const e = maxScaledError(got, want, rtol, atol);
  assert(e <= 1, `${what}: scaled error ${e}`);
}

async function checkShape(rng: Rng, rows: number, cols: number) {
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  const tag = `rows=${rows} cols=${cols}`;
  const n = rows * cols;
  const A = rng.normals(n), B = rng.normals(n), v = rng.normals(cols), w = rng.normals(2 * rows);
  // Some exact zeros and negatives so masks see both sides.
  for (let e = 0; e < n; e += 7) A[e] = 0;
  const gA = upload(device, A), gB = upload(device, B), gv = upload(device, v);
  const gw = upload(device, w);
  const out = createBuffer(device, n * 4);
  const small = createBuffer(device, Math.max(rows, cols) * 4);
  const a = rng.normal(), b = rng.normal();
  const k = 1 + rng.int(Math.min(dense.DENSE_TOPK_MAX_K, cols));

  const runOut = async (
    what: string,
    rec: (r: Parameters<Parameters<typeof submitPass>[3]>[0]) => void,
    buf: GPUBuffer,
    count: number,
    init?: Float32Array,
  ) => {
    if (init) write(device, buf, init);
    else poison(device, buf);
    submitPass(device, uniforms, what, rec);
    return await readF32(device, buf, count);
  };

  // center
  {
    const got = await runOut(
      "center",
      (r) => dense.center(r, { x: gA, bias: gv, out }, { rows, cols }),
      out,
      n,
    );
    close(got, Float64Array.from(A, (x, e) => x - v[e % cols]), `center ${tag}`, 0, 1e-6);
  }
  // relu
  {
    const got = await runOut(
      "relu",
      (r) => dense.relu(r, { pre: gB, h: out }, { rows, cols }),
      out,
      n,
    );
    close(got, Float64Array.from(B, (x) => Math.max(x, 0)), `relu ${tag}`, 0, 1e-12);
  }
  // topk_relu
  {
    const got = await runOut(
      "topk",
      (r) => dense.topkRelu(r, { pre: gB, h: out }, { rows, cols, k }),
      out,
      n,
    );
    const want = new Float64Array(n);
    for (let t = 0; t < rows; t++) {
      const order = [...Array(cols).keys()].sort((p, q) =>
        B[t * cols + q] - B[t * cols + p] || p - q
      );
      for (const j of order.slice(0, k)) want[t * cols + j] = Math.max(B[t * cols + j], 0);
    }
    close(got, want, `topk_relu k=${k} ${tag}`, 0, 1e-12);
  }
  // dxhat (in place on g)
  {
    const g0 = rng.normals(n);
    const got = await runOut(
      "dxhat",
      (r) => dense.dxhat(r, { xhat: gA, x: gB, g: out }, { rows, cols, a, b }),
      out,
      n,
      g0,
    );
    close(got, Float64Array.from(g0, (g, e) => a * (A[e] - B[e]) + b * g), `dxhat ${tag}`);
    // b = 0 (no external gradient): g is not read, so it needs no zeroing (poisoned here).
    const alone = await runOut(
      "dxhat-b0",
      (r) => dense.dxhat(r, { xhat: gA, x: gB, g: out }, { rows, cols, a, b: 0 }),
      out,
      n,
    );
    close(alone, Float64Array.from(A, (x, e) => a * (x - B[e])), `dxhat b=0 ${tag}`);
  }
  // mask_grad (in place on dh)
  {
    const dh0 = rng.normals(n);
    const got = await runOut(
      "mask",
      (r) => dense.maskGrad(r, { h: gA, norms: gv, dh: out }, { rows, cols, a }),
      out,
      n,
      dh0,
    );
    const want = Float64Array.from(dh0, (g, e) => A[e] > 0 ? g + a * v[e % cols] : 0);
    close(got, want, `mask_grad ${tag}`);
  }
  // col_sum
  {
    const got = await runOut(
      "colsum",
      (r) => dense.colSum(r, { m: gB, out: small }, { rows, cols }),
      small,
      cols,
    );
    const want = new Float64Array(cols);
    for (let e = 0; e < n; e++) want[e % cols] += B[e];
    close(got, want, `col_sum ${tag}`, 1e-5, 1e-5 * Math.sqrt(rows));
  }
  // row_norms
  {
    const got = await runOut(
      "norms",
      (r) => dense.rowNorms(r, { m: gB, out: small }, { rows, cols }),
      small,
      rows,
    );
    const want = new Float64Array(rows);
    for (let e = 0; e < n; e++) want[Math.floor(e / cols)] += B[e] ** 2;
    close(got, want.map(Math.sqrt), `row_norms ${tag}`);
  }
  // bdec_grad (in place on out [rows])
  {
    const o0 = rng.normals(rows);
    const got = await runOut(
      "bdec",
      (r) => dense.bdecGrad(r, { W_enc: gB, dbEnc: gv, out: small }, { rows, cols }),
      small,
      rows,
      o0,
    );
    const want = Float64Array.from(o0);
    for (let e = 0; e < n; e++) want[Math.floor(e / cols)] -= B[e] * v[e % cols];
    close(got, want, `bdec_grad ${tag}`, 1e-5, 1e-5 * Math.sqrt(cols));
  }
  // l1_dec (in place on gW); w = [hsum (rows), norms (rows)], some norms below the floor
  {
    w[0] = 0;
    write(device, gw, w);
    const g0 = rng.normals(n);
    const got = await runOut(
      "l1dec",
      (r) => dense.l1Dec(r, { W_dec: gB, hsumNorms: gw, gW: out }, { rows, cols, a }),
      out,
      n,
      g0,
    );
    const want = Float64Array.from(g0, (g, e) => {
      const j = Math.floor(e / cols);
      return g + a * w[j] * B[e] / Math.max(w[rows + j], 1e-12);
    });
    close(got, want, `l1_dec ${tag}`);
  }
  // count_active
  {
    const got = await runOut(
      "l0",
      (r) => dense.countActive(r, { h: gA, out: small }, { rows, cols }),
      small,
      rows,
    );
    const want = new Float64Array(rows);
    for (let e = 0; e < n; e++) if (A[e] > 0) want[Math.floor(e / cols)]++;
    close(got, want, `count_active ${tag}`, 0, 1e-12);
  }
  for (const buf of [gA, gB, gv, gw, out, small]) buf.destroy();
  uniforms.destroy();
}

Deno.test("sae_dense: every entry vs float64 on random shapes", async () => {
  const rng = freshRng("sae_dense");
  for (let trial = 0; trial < 5; trial++) {
    await checkShape(rng, 1 + rng.int(trial === 0 ? 3 : 70), 1 + rng.int(trial < 2 ? 20 : 300));
  }
});

Deno.test("sae_dense: element-wise entries past 65535 workgroups (grid split over y)", async () => {
  const rng = freshRng("sae_dense-wide");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  // 65535·64 = 4194240 elements fit one row of workgroups; go a little past.
  const rows = 1025 + rng.int(40), cols = 4096 + rng.int(100), n = rows * cols;
  const x = rng.normals(n), bias = rng.normals(cols);
  const gx = upload(device, x), gb = upload(device, bias), out = createBuffer(device, n * 4);
  poison(device, out);
  submitPass(
    device,
    uniforms,
    "center",
    (r) => dense.center(r, { x: gx, bias: gb, out }, { rows, cols }),
  );
  const got = await readF32(device, out, n);
  close(got, Float64Array.from(x, (v, e) => v - bias[e % cols]), `center ${rows}×${cols}`, 0, 1e-6);
  for (const b of [gx, gb, out]) b.destroy();
  uniforms.destroy();
});

Deno.test("sae_dense: a buffer smaller than its shape is refused by name", async () => {
  const { device } = await testGpu();
  const x = createBuffer(device, 12 * 4), bias = createBuffer(device, 4 * 4);
  const out = createBuffer(device, 11 * 4);
  assertPassRefused(
    device,
    (r) => dense.center(r, { x, bias, out }, { rows: 3, cols: 4 }),
    "sae_dense.center: out holds 11 values, needs 12 (rows=3 cols=4)",
  );
  assertPassRefused(
    device,
    (r) => dense.topkRelu(r, { pre: x, h: x }, { rows: 3, cols: 4, k: 5 }),
    "k must be in",
  );
  for (const b of [x, bias, out]) b.destroy();
});

Deno.test("sae_dense: addInto adds the first rows·cols values and leaves the rest", async () => {
  const rng = freshRng("sae_dense-add");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  const rows = 1 + rng.int(70), cols = 1 + rng.int(90), count = rows * cols;
  const extra = 1 + rng.int(7);
  const a = rng.normals(count), b = rng.normals(count + extra);
  const src = upload(device, a), out = upload(device, b);
  submitPass(device, uniforms, "add", (r) => dense.addInto(r, { src, out }, { rows, cols }));
  const got = await readF32(device, out);
  const want = Float32Array.from(b, (v, e) => e < count ? v + a[e] : v);
  assertEquals([...got], [...want]);
  assertPassRefused(
    device,
    (r) => dense.addInto(r, { src, out }, { rows: rows + 1, cols }),
    `sae_dense.add_into: src holds ${count} values, needs ${count + cols}`,
  );
  for (const x of [src, out]) x.destroy();
  uniforms.destroy();
});
