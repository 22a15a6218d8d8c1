import { assert, assertLess, assertThrows } from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { Matmul } from "../../gpu/matmul.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError } from "../util/rand.ts";

Deno.test("matmul: every transpose combination, with and without bias, odd sizes, vs float64", async () => {
  const { device } = await testGpu();
  const rng = freshRng("matmul");
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const bias of [false, true]) {
        const M = 1 + rng.int(70), N = 1 + rng.int(90), K = 1 + rng.int(50);
        const a = rng.normals(M * K), b = rng.normals(K * N), c = rng.normals(N);
        const A = (r: number, k: number) => (transA ? a[k * M + r] : a[r * K + k]);
        const B = (k: number, j: number) => (transB ? b[j * K + k] : b[k * N + j]);
        const want = new Float64Array(M * N);
        for (let r = 0; r < M; r++) {
          for (let j = 0; j < N; j++) {
            let s = bias ? c[j] : 0;
            for (let k = 0; k < K; k++) s += A(r, k) * B(k, j);
            want[r * N + j] = s;
          }
        }
        const mm = new Matmul(device, { M, N, K, transA, transB }, bias);
        const out = createBuffer(device, M * N * 4);
        poison(device, out);
        const [ba, bb, bc] = [upload(device, a), upload(device, b), upload(device, c)];
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        mm.record(pass, ba, bb, out, bias ? bc : undefined);
        pass.end();
        device.queue.submit([enc.finish()]);
        const got = await readF32(device, out, M * N);
        assert(got.every(Number.isFinite), "every output written");
        assertLess(
          maxScaledError(got, want, 1e-5, 1e-5),
          1,
          `M=${M} N=${N} K=${K} tA=${transA} tB=${transB}`,
        );
        for (const x of [ba, bb, bc, out]) x.destroy();
        mm.destroy();
      }
    }
  }
});

Deno.test("matmul: a buffer too small for the shape is a named error", async () => {
  const { device } = await testGpu();
  const mm = new Matmul(device, { M: 4, N: 4, K: 4 });
  const small = createBuffer(device, 8), ok = createBuffer(device, 64);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assertThrows(
    () => mm.record(pass, small, ok, ok),
    RangeError,
    "matmul: A holds 2 values, needs 16",
  );
  pass.end();
  assertThrows(() => new Matmul(device, { M: 0, N: 1, K: 1 }), RangeError, "M must be");
});

Deno.test("matmul: the register-blocked kernel (K, N multiples of 4), both tile shapes, vs float64", async () => {
  const { device } = await testGpu();
  const rng = freshRng("matmul-blocked");
  for (const tile of [{ tm: 8, tn4: 4 }, { tm: 4, tn4: 2 }]) {
    for (const bias of [false, true]) {
      const M = 1 + rng.int(90), N = 4 * (1 + rng.int(40)), K = 4 * (1 + rng.int(30));
      const a = rng.normals(M * K), b = rng.normals(K * N), c = rng.normals(N);
      const want = new Float64Array(M * N);
      for (let r = 0; r < M; r++) {
        for (let j = 0; j < N; j++) {
          let s = bias ? c[j] : 0;
          for (let k = 0; k < K; k++) s += a[r * K + k] * b[k * N + j];
          want[r * N + j] = s;
        }
      }
      const mm = new Matmul(device, { M, N, K }, bias, tile);
      assert(mm.tile.rows === tile.tm && mm.tile.cols === 4 * tile.tn4, "blocked kernel chosen");
      const out = createBuffer(device, M * N * 4);
      poison(device, out);
      const [ba, bb, bc] = [upload(device, a), upload(device, b), upload(device, c)];
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      mm.record(pass, ba, bb, out, bias ? bc : undefined);
      pass.end();
      device.queue.submit([enc.finish()]);
      const got = await readF32(device, out, M * N);
      assert(got.every(Number.isFinite), "every output written");
      assertLess(maxScaledError(got, want, 1e-5, 1e-5), 1, `M=${M} N=${N} K=${K} tile=${tile.tm}`);
      for (const x of [ba, bb, bc, out]) x.destroy();
      mm.destroy();
    }
  }
});
