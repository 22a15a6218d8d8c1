// The gated SAE's kernels (shaders/gated.wgsl) against float64 on fresh random inputs and shapes that
// are not multiples of the workgroup size, outputs poisoned (NaN) first; short buffers refused.
import { assert } from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { encode, preGrad, rGrad } from "../../gpu/gated.ts";
import { submitPass, UniformArena } from "../../gpu/kernel.ts";
import { assertPassRefused, testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError, type Rng } from "../util/rand.ts";

const f32 = Math.fround;

function shape(rng: Rng, trial: number): { rows: number; cols: number } {
  return { rows: 1 + rng.int(trial < 3 ? 9 : 70), cols: 1 + rng.int(trial < 3 ? 70 : 300) };
}

/** ReLU'd normals: about half exact zeros, as activations are. */
function relus(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.max(0, rng.normal()));
}

Deno.test("gated: encode vs float64 on random shapes", async () => {
  const rng = freshRng("gated.encode");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  for (let trial = 0; trial < 6; trial++) {
    const { rows, cols } = shape(rng, trial), n = rows * cols;
    const u = rng.normals(n), bGate = rng.normals(cols, 0.5);
    const rMag = rng.normals(cols, 0.5), bMag = rng.normals(cols, 0.5);
    const ins = [u, bGate, rMag, bMag].map((a) => upload(device, a));
    const f = createBuffer(device, n * 4), gate = createBuffer(device, n * 4);
    poison(device, f);
    poison(device, gate);
    submitPass(
      device,
      uniforms,
      "encode",
      (r) =>
        encode(r, { u: ins[0], bGate: ins[1], rMag: ins[2], bMag: ins[3], f, gate }, {
          rows,
          cols,
        }),
    );
    const [gotF, gotG] = [await readF32(device, f, n), await readF32(device, gate, n)];
    const wantF = new Float64Array(n), wantG = new Float64Array(n);
    let open = 0;
    for (let e = 0; e < n; e++) {
      const j = e % cols;
      // The gate's sign as the shader decides it (one f32 add); the values in float64.
      const on = f32(u[e] + bGate[j]) > 0;
      wantG[e] = on ? u[e] + bGate[j] : 0;
      wantF[e] = on ? Math.max(0, Math.exp(rMag[j]) * u[e] + bMag[j]) : 0;
      if (wantF[e] > 0) open++;
    }
    assert(open > 0 && open < n || n < 8, `trial ${trial}: no mix of open and shut latents`);
    const errF = maxScaledError(gotF, wantF, 1e-5, 1e-5);
    const errG = maxScaledError(gotG, wantG, 1e-6, 1e-6);
    assert(
      errF <= 1 && errG <= 1,
      `rows=${rows} cols=${cols}: f error ${errF}, gate error ${errG}`,
    );
    for (const b of [...ins, f, gate]) b.destroy();
  }
  uniforms.destroy();
});

Deno.test("gated: pre_grad and r_grad vs float64 on random shapes", async () => {
  const rng = freshRng("gated.grads");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  for (let trial = 0; trial < 6; trial++) {
    const { rows, cols } = shape(rng, trial), n = rows * cols;
    const f = relus(rng, n), gate = relus(rng, n), u = rng.normals(n);
    const norms = Float32Array.from({ length: cols }, () => 0.2 + rng.uniform());
    const rMag = rng.normals(cols, 0.5), dh0 = rng.normals(n), dg0 = rng.normals(n);
    const a = 0.3 * rng.normal();
    const [bf, bg, bn, br, bu] = [f, gate, norms, rMag, u].map((x) => upload(device, x));
    const dh = upload(device, dh0), dg = upload(device, dg0);
    const du = createBuffer(device, n * 4), dr = createBuffer(device, cols * 4);
    poison(device, du);
    poison(device, dr);
    submitPass(device, uniforms, "grads", (r) => {
      preGrad(r, { f: bf, gate: bg, norms: bn, rMag: br, dh, dg, du }, { rows, cols, a });
      rGrad(r, { dmag: dh, u: bu, rMag: br, out: dr }, { rows, cols });
    });
    const got = {
      dmag: await readF32(device, dh, n),
      dgate: await readF32(device, dg, n),
      du: await readF32(device, du, n),
      dr: await readF32(device, dr, cols),
    };
    const want = {
      dmag: new Float64Array(n),
      dgate: new Float64Array(n),
      du: new Float64Array(n),
      dr: new Float64Array(cols),
    };
    for (let e = 0; e < n; e++) {
      const j = e % cols;
      want.dmag[e] = f[e] > 0 ? dh0[e] : 0;
      want.dgate[e] = gate[e] > 0 ? dg0[e] + f32(a) * norms[j] : 0;
      want.du[e] = want.dgate[e] + Math.exp(rMag[j]) * want.dmag[e];
      want.dr[j] += want.dmag[e] * u[e];
    }
    for (let j = 0; j < cols; j++) want.dr[j] *= Math.exp(rMag[j]);
    for (const k of ["dmag", "dgate", "du"] as const) {
      const err = maxScaledError(got[k], want[k], 1e-5, 1e-5);
      assert(err <= 1, `rows=${rows} cols=${cols}: ${k} scaled error ${err}`);
    }
    const errR = maxScaledError(got.dr, want.dr, 1e-5, 1e-5 * Math.sqrt(rows) * 4);
    assert(errR <= 1, `rows=${rows} cols=${cols}: r_mag gradient scaled error ${errR}`);
    for (const b of [bf, bg, bn, br, bu, dh, dg, du, dr]) b.destroy();
  }
  uniforms.destroy();
});

Deno.test("gated: short buffers are refused by name", async () => {
  const { device } = await testGpu();
  const big = createBuffer(device, 64 * 4), short = createBuffer(device, 7 * 4);
  const dims = { rows: 8, cols: 8 };
  assertPassRefused(
    device,
    (r) => encode(r, { u: big, bGate: big, rMag: short, bMag: big, f: big, gate: big }, dims),
    "gated.encode: rMag holds 7 values, needs 8 (rows=8 cols=8)",
  );
  assertPassRefused(
    device,
    (r) => encode(r, { u: big, bGate: big, rMag: big, bMag: big, f: big, gate: short }, dims),
    "gated.encode: gate holds 7 values, needs 64 (rows=8 cols=8)",
  );
  assertPassRefused(
    device,
    (r) =>
      preGrad(r, { f: big, gate: big, norms: big, rMag: big, dh: big, dg: big, du: short }, {
        ...dims,
        a: 0,
      }),
    "gated.pre_grad: du holds 7 values, needs 64 (rows=8 cols=8)",
  );
  assertPassRefused(
    device,
    (r) => rGrad(r, { dmag: big, u: big, rMag: big, out: short }, dims),
    "gated.r_grad: out holds 7 values, needs 8 (rows=8 cols=8)",
  );
  big.destroy();
  short.destroy();
});
