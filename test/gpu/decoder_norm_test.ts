import { assert, assertThrows } from "@std/assert";
import { createBuffer, poison, readF32, write } from "../../gpu/buffers.ts";
import { DecoderNorm } from "../../gpu/decoder_norm.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError } from "../util/rand.ts";

const TAIL = 70; // poisoned floats past the matrix: an out-of-range write shows up there

for (const chunked of [false, true]) {
  Deno.test(`decoder constraint step matches float64 (chunked=${chunked})`, async () => {
    const { device } = await testGpu();
    const rng = freshRng("decoder_norm");
    const rows = 300 + rng.int(100), d = 65 + rng.int(100);
    const W = rng.normals(rows * d, 0.3);
    // Row 3 is zero: both steps must leave it (and its gradient) alone.
    W.fill(0, 3 * d, 4 * d);
    const G = rng.normals(rows * d);
    const mk = (data: Float32Array) => {
      const b = createBuffer(device, (rows * d + TAIL) * 4);
      poison(device, b);
      write(device, b, data);
      return b;
    };
    const wBuf = mk(W), gBuf = mk(G);
    const dn = new DecoderNorm(device, wBuf, rows, d, {
      maxBindingBytes: chunked ? 65536 : undefined,
    });
    dn.run((pass) => dn.recordRemoveParallel(pass, gBuf));
    dn.run((pass) => dn.recordNormalize(pass));

    const gRef = new Float64Array(rows * d), wRef = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      let gw = 0, ww = 0;
      for (let j = 0; j < d; j++) {
        gw += G[r * d + j] * W[r * d + j];
        ww += W[r * d + j] ** 2;
      }
      const c = ww > 0 ? gw / ww : 0;
      const inv = ww > 0 ? 1 / Math.sqrt(ww) : 1;
      for (let j = 0; j < d; j++) {
        gRef[r * d + j] = G[r * d + j] - c * W[r * d + j];
        wRef[r * d + j] = W[r * d + j] * inv;
      }
    }
    const gAll = await readF32(device, gBuf, rows * d + TAIL);
    const wAll = await readF32(device, wBuf, rows * d + TAIL);
    const eg = maxScaledError(gAll.subarray(0, rows * d), gRef, 1e-5, 1e-5);
    const ew = maxScaledError(wAll.subarray(0, rows * d), wRef, 1e-5, 1e-6);
    assert(eg <= 1 && ew <= 1, `grad worst ${eg}, W worst ${ew}`);
    assert(gAll.subarray(rows * d).every(Number.isNaN), "grad written past its end");
    assert(wAll.subarray(rows * d).every(Number.isNaN), "W_dec written past its end");
    // The projected gradient is orthogonal to its (now unit) row.
    for (let r = 0; r < rows; r += 7) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += gAll[r * d + j] * wAll[r * d + j];
      assert(Math.abs(dot) < 1e-4, `row ${r}: g·w = ${dot}`);
    }
    dn.destroy();
    wBuf.destroy();
    gBuf.destroy();
  });
}

Deno.test("decoder_norm: W_dec or its gradient shorter than dSae·dIn is refused by name", async () => {
  const { device } = await testGpu();
  const w = createBuffer(device, 6 * 4), g = createBuffer(device, 5 * 4);
  assertThrows(
    () => new DecoderNorm(device, w, 3, 3),
    RangeError,
    "decoder_norm: W_dec holds 6 values, needs 9",
  );
  const dn = new DecoderNorm(device, w, 2, 3);
  assertThrows(
    () => dn.run((pass) => dn.recordRemoveParallel(pass, g)),
    RangeError,
    "decoder_norm: gradW_dec holds 5 values, needs 6",
  );
  dn.destroy();
  w.destroy();
  g.destroy();
});
