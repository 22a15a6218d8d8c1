// Transcoders in the GPU trainers: the loss's target is the MLP output y, not the input; the
// encoder reads x without b_dec; a skip transcoder adds x·W_skipᵀ and trains W_skip. Forward against
// the float64 reference, every gradient (W_skip's too) against central differences of the float64
// loss, for the sparse TopK trainer and the dense one (topk, relu), with and without the skip.
import { assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import { readF32 } from "../../gpu/buffers.ts";
import { DenseGpuTrainer } from "../../sae/dense_trainer.ts";
import type { GpuSaeTrainer } from "../../sae/gpu_trainer.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import { createSaeTrainer } from "../../sae/trainers.ts";
import type { Sae, SaeKind } from "../../sae/types.ts";
import { poisonAll, testGpu } from "../util/gpu.ts";
import { freshRng, relError } from "../util/rand.ts";
import { centralDifferences } from "../util/fd.ts";
import { forwardRef, lossRef } from "./ref.ts";

const FD_OPTS = { weightDecay: 0, gradClip: 1e9, decoderConstraint: false };

function transcoder(
  rng: ReturnType<typeof freshRng>,
  kind: SaeKind,
  d: number,
  m: number,
  k: number,
  skip: boolean,
): Sae {
  return {
    cfg: { kind, dIn: d, dSae: m, k, l1Coefficient: 0, transcoder: { skip } },
    weights: {
      W_enc: rng.normals(d * m, 0.4),
      b_enc: rng.normals(m, 0.1),
      W_dec: rng.normals(m * d, 0.3),
      b_dec: rng.normals(d, 0.2),
      ...(skip ? { W_skip: rng.normals(d * d, 0.2) } : {}),
    },
  };
}

const CASES: Array<{ name: string; kind: SaeKind; sparse: boolean; skip: boolean }> = [
  { name: "sparse topk", kind: "topk", sparse: true, skip: false },
  { name: "sparse topk, skip", kind: "topk", sparse: true, skip: true },
  { name: "dense topk, skip", kind: "topk", sparse: false, skip: true },
  { name: "dense relu, skip", kind: "relu", sparse: false, skip: true },
];

for (const c of CASES) {
  Deno.test(`transcoder (${c.name}): x̂, mse and gradients match the float64 reference`, async () => {
    const gpu = await testGpu();
    const rng = freshRng(`transcoder-${c.name}`);
    const d = 5 + rng.int(3), m = 9 + rng.int(4), k = 3, n = 6 + rng.int(3);
    const wMse = 0.6, wExt = 0.35;
    const s = transcoder(rng, c.kind, d, m, k, c.skip);
    const x = rng.normals(n * d), y = rng.normals(n * d), g = rng.normals(n * d);
    const t: GpuSaeTrainer = c.sparse
      ? new TopKGpuTrainer(gpu, s, FD_OPTS)
      : new DenseGpuTrainer(gpu, s, FD_OPTS);
    try {
      const f = await t.forward(x, n, false, y);
      const want = forwardRef(s, x).xHat;
      assertLess(relError(f.xhat, want), 1e-5, "ŷ");
      let se = 0;
      for (let e = 0; e < y.length; e++) se += (want[e] - y[e]) ** 2;
      assertLess(Math.abs(f.mse - se / y.length) / (se / y.length), 1e-5, "mse against y");
      poisonAll(gpu.device, t.grads);
      await t.backward({ wMse, gExt: g, wExt });
      const names: Array<"W_enc" | "b_enc" | "W_dec" | "b_dec" | "W_skip"> = [
        "W_enc",
        "b_enc",
        "W_dec",
        "b_dec",
        ...(c.skip ? ["W_skip" as const] : []),
      ];
      const w64: Record<string, Float64Array> = {};
      for (const name of names) w64[name] = Float64Array.from(s.weights[name]!);
      for (const name of names) {
        const got = await readF32(gpu.device, t.grads[name]!, w64[name].length);
        const fd = centralDifferences(
          w64[name],
          () => lossRef(s.cfg, w64, { x, y, g, wMse, wExt }),
        );
        assertLess(relError(got, fd), 2e-4, `∂${name}`);
      }
    } finally {
      t.release();
    }
  });
}

Deno.test("transcoder: W_skip starts at zero and moves; a step lowers the MSE against y", async () => {
  const gpu = await testGpu();
  const rng = freshRng("transcoder-step");
  const d = 16, m = 64, k = 8, n = 128;
  const s = transcoder(rng, "topk", d, m, k, true);
  s.weights.W_skip = new Float32Array(d * d);
  // y linear in x: the skip alone can learn it.
  const A = rng.normals(d * d, 0.3);
  const x = rng.normals(n * d), y = new Float32Array(n * d);
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < d; o++) {
      for (let j = 0; j < d; j++) y[t * d + o] += x[t * d + j] * A[o * d + j];
    }
  }
  const t = new TopKGpuTrainer(gpu, s, { weightDecay: 0, gradClip: 1, decoderConstraint: false });
  try {
    const first = (await t.forward(x, n, false, y)).mse;
    await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-2 });
    for (let i = 0; i < 20; i++) {
      await t.forward(x, n, false, y);
      await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-2 });
    }
    const last = (await t.forward(x, n, false, y)).mse;
    assertLess(last, first * 0.8, `mse ${first} → ${last}`);
    const out = await t.toSae();
    assertEquals(out.cfg.transcoder, { skip: true });
    assertLess(0, out.weights.W_skip!.reduce((a, v) => a + Math.abs(v), 0), "W_skip trained");
  } finally {
    t.release();
  }
});

Deno.test("transcoder: forward without a target, or an SAE given one, is refused", async () => {
  const gpu = await testGpu();
  const rng = freshRng("transcoder-target");
  const d = 4, m = 8, n = 3;
  const tc = new TopKGpuTrainer(gpu, transcoder(rng, "topk", d, m, 2, false), FD_OPTS);
  const plain = transcoder(rng, "topk", d, m, 2, false);
  delete plain.cfg.transcoder;
  const sae = new TopKGpuTrainer(gpu, plain, FD_OPTS);
  try {
    const x = rng.normals(n * d);
    await assertRejects(() => tc.forward(x, n), Error, "needs its target");
    await assertRejects(
      () => sae.forward(x, n, false, rng.normals(n * d)),
      Error,
      "only transcoders",
    );
  } finally {
    tc.release();
    sae.release();
  }
});

Deno.test("transcoder of a kind without transcoder support is refused, naming the supported kinds", async () => {
  const gpu = await testGpu();
  const rng = freshRng("transcoder-kind");
  const s = transcoder(rng, "topk", 4, 8, 2, false);
  s.cfg.kind = "gated" as SaeKind;
  assertThrows(() => createSaeTrainer(gpu, s, FD_OPTS), Error, "relu, topk, batchtopk, jumprelu");
});
