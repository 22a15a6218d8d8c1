// The Matryoshka prefix kernels (shaders/matryoshka.wgsl) against float64 on random odd shapes and
// random prefix widths, with sparse codes (zeros, as a BatchTopK selection leaves them) and every
// output poisoned with NaN first (the decode's compacted code list too); short buffers are
// refused by name.
import { assertEquals, assertLess } from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { submitPass, UniformArena } from "../../gpu/kernel.ts";
import * as mat from "../../gpu/matryoshka.ts";
import { assertPassRefused, testGpu } from "../util/gpu.ts";
import { freshRng, relError, type Rng } from "../util/rand.ts";

/** Random strictly increasing widths ending at m. */
function randomWidths(rng: Rng, m: number): number[] {
  const cuts = new Set<number>();
  const want = Math.min(m - 1, rng.int(5));
  while (cuts.size < want) cuts.add(1 + rng.int(m - 1));
  return [...[...cuts].sort((a, b) => a - b), m];
}

/** Codes with about 70% zeros and the rest positive. */
function sparseCodes(rng: Rng, count: number): Float32Array {
  return Float32Array.from({ length: count }, () => rng.uniform() < 0.7 ? 0 : rng.uniform() * 2);
}

function groupOf(widths: number[], j: number): number {
  return widths.findIndex((w) => j < w);
}

Deno.test("matryoshka: prefix decode, suffix residuals and gradients vs float64", async () => {
  const rng = freshRng("matryoshka");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  for (let trial = 0; trial < 6; trial++) {
    const n = 1 + rng.int(trial < 3 ? 9 : 70), d = 1 + rng.int(trial < 3 ? 7 : 40);
    const m = 1 + rng.int(trial < 3 ? 12 : 150);
    const widths = randomWidths(rng, m), G = widths.length;
    const shape = `n=${n} d=${d} m=${m} widths=[${widths}]`;
    // Trial 5: every code nonzero (a full row in the decode's compacted list).
    const h = trial === 5 ? rng.normals(n * m) : sparseCodes(rng, n * m),
      W = rng.normals(m * d),
      bDec = rng.normals(d);
    const x = rng.normals(n * d), gExt = rng.normals(n * d);
    const a = 0.1 + rng.uniform(), b = trial % 2 ? 0 : rng.normal();
    // float64 references
    const xh = new Float64Array(G * n * d);
    for (let g = 0; g < G; g++) {
      for (let t = 0; t < n; t++) {
        for (let i = 0; i < d; i++) {
          let v = bDec[i];
          for (let j = 0; j < widths[g]; j++) v += h[t * m + j] * W[j * d + i];
          xh[(g * n + t) * d + i] = v;
        }
      }
    }
    const S = new Float64Array(G * n * d);
    for (let g = 0; g < G; g++) {
      for (let e = 0; e < n * d; e++) {
        let v = b * gExt[e];
        for (let q = g; q < G; q++) v += a * (xh[q * n * d + e] - x[e]);
        S[g * n * d + e] = v;
      }
    }
    const dh = new Float64Array(n * m), gW = new Float64Array(m * d);
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < m; j++) {
        const g = groupOf(widths, j);
        let v = 0;
        for (let i = 0; i < d; i++) v += S[(g * n + t) * d + i] * W[j * d + i];
        dh[t * m + j] = h[t * m + j] > 0 ? v : 0;
        for (let i = 0; i < d; i++) gW[j * d + i] += h[t * m + j] * S[(g * n + t) * d + i];
      }
    }
    // ∂W_enc[i, j] = Σ_t x[t, i]·dh[t, j] (x standing in for x − b_dec).
    const gE = new Float64Array(d * m);
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < m; j++) {
        if (dh[t * m + j] === 0) continue;
        for (let i = 0; i < d; i++) gE[i * m + j] += x[t * d + i] * dh[t * m + j];
      }
    }
    const B = {
      h: upload(device, h),
      W: upload(device, W),
      bDec: upload(device, bDec),
      x: upload(device, x),
      gExt: upload(device, gExt),
      ends: upload(device, Uint32Array.from(widths)),
      list: createBuffer(device, mat.listWords(n, m) * 4),
      xh: createBuffer(device, G * n * d * 4),
      S: createBuffer(device, G * n * d * 4),
      dh: createBuffer(device, n * m * 4),
      gW: createBuffer(device, m * d * 4),
      gE: createBuffer(device, d * m * 4),
      cols: createBuffer(device, mat.colWords(n, m) * 4),
    };
    for (const o of [B.list, B.cols, B.xh, B.S, B.dh, B.gW, B.gE]) poison(device, o);
    const dims = { n, d, m, groups: G };
    submitPass(device, uniforms, "matryoshka", (r) => {
      mat.prefixDecode(r, {
        h: B.h,
        list: B.list,
        W_dec: B.W,
        b_dec: B.bDec,
        ends: B.ends,
        out: B.xh,
      }, dims);
      mat.suffixResidual(r, { xhats: B.xh, x: B.x, gExt: B.gExt, ends: B.ends, out: B.S }, {
        ...dims,
        a,
        b,
      });
      mat.latentGrad(r, { suffix: B.S, W_dec: B.W, h: B.h, ends: B.ends, out: B.dh }, dims);
      mat.decoderGrad(r, { h: B.h, suffix: B.S, ends: B.ends, cols: B.cols, out: B.gW }, dims);
      mat.encoderGrad(r, { xc: B.x, dh: B.dh, ends: B.ends, cols: B.cols, out: B.gE }, dims);
    });
    const [gxh, gS, gdh, ggW, ggE] = await Promise.all([
      readF32(device, B.xh),
      readF32(device, B.S),
      readF32(device, B.dh),
      readF32(device, B.gW),
      readF32(device, B.gE),
    ]);
    assertLess(relError(gxh, xh), 1e-5, `prefix reconstructions ${shape}`);
    assertLess(relError(gS, S), 1e-5, `suffix residuals ${shape}`);
    // Unselected entries are exact zeros, not just small.
    gdh.forEach((v, e) => h[e] > 0 || assertEquals(v, 0, `dh[${e}] of an unselected latent`));
    if (dh.some((v) => v !== 0)) assertLess(relError(gdh, dh), 1e-5, `latent gradient ${shape}`);
    assertLess(relError(ggW, gW), 1e-5, `decoder gradient ${shape}`);
    if (gE.some((v) => v !== 0)) assertLess(relError(ggE, gE), 1e-5, `encoder gradient ${shape}`);
    else assertEquals([...ggE].every((v) => v === 0), true, "no codes: a zero encoder gradient");
    for (const buf of Object.values(B)) buf.destroy();
  }
  uniforms.destroy();
});

Deno.test("matryoshka: short buffers are refused by name", async () => {
  const { device } = await testGpu();
  const dims = { n: 3, d: 4, m: 5, groups: 2 };
  const big = createBuffer(device, 1024), short = createBuffer(device, 2 * 3 * 4 * 4 - 4);
  const ends = upload(device, Uint32Array.of(2, 5));
  assertPassRefused(
    device,
    (r) =>
      mat.prefixDecode(r, { h: big, list: big, W_dec: big, b_dec: big, ends, out: short }, dims),
    "matryoshka.prefix_decode: out holds 23 values, needs 24",
  );
  assertPassRefused(
    device,
    (r) =>
      mat.prefixDecode(r, { h: big, list: ends, W_dec: big, b_dec: big, ends, out: big }, dims),
    "matryoshka.prefix_decode: list holds 2 values, needs 18",
  );
  assertPassRefused(
    device,
    (r) =>
      mat.suffixResidual(r, { xhats: short, x: big, gExt: big, ends, out: big }, {
        ...dims,
        a: 1,
        b: 0,
      }),
    "matryoshka.suffix_residual: xhats holds 23 values, needs 24",
  );
  assertPassRefused(
    device,
    (r) => mat.latentGrad(r, { suffix: big, W_dec: big, h: big, ends: big, out: ends }, dims),
    "matryoshka.latent_grad: out holds 2 values, needs 15",
  );
  assertPassRefused(
    device,
    (r) =>
      mat.decoderGrad(r, { h: big, suffix: big, ends: short, cols: big, out: big }, {
        ...dims,
        groups: 0,
      }),
    "matryoshka.decoder_grad: groups must be a positive integer, got 0",
  );
  assertPassRefused(
    device,
    (r) => mat.decoderGrad(r, { h: big, suffix: big, ends, cols: ends, out: big }, dims),
    "matryoshka.decoder_grad: cols holds 2 values, needs 20",
  );
  assertPassRefused(
    device,
    (r) => mat.encoderGrad(r, { xc: big, dh: big, ends, cols: big, out: short }, { ...dims, m: 7 }),
    "matryoshka.encoder_grad: out holds 23 values, needs 28",
  );
  for (const b of [big, short, ends]) b.destroy();
});
