// The CPU TopK trainer (native ORT encoder + JS) against TopKGpuTrainer, whose gradients
// topk_trainer_test.ts checks against finite differences: on identical random inputs, step for
// step, with ∂KL/∂x̂, dead latents (auxk on from the second step), clipping, weight decay, with and
// without the decoder constraint, at an odd batch size. Tolerances: both sum in float32 in other
// orders (the GPU per element with fma, JS partly in float64), so values agree to ~1e-6
// relative; the bounds are 1e-5 (x̂, mse, gradient norm, first moments) and 1e-4 for the auxk loss,
// whose residual e = x − x̂ cancels most of x. Adam's update lr·m̂/(√v̂+ε) is sign-like: where a
// gradient element sits at float32 rounding level the two trainers may step it differently, by at
// most a few lr, so the weights allow one such element in 10⁴ and compare the rest at 1e-5.
import { assert, assertEquals, assertLess, assertRejects } from "@std/assert";
import { createBuffer } from "../../gpu/buffers.ts";
import { CpuTopKTrainer } from "../../sae/cpu_topk_trainer.ts";
import type { TrainerState } from "../../sae/gpu_trainer.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import type { Sae } from "../../sae/types.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, relError, type Rng } from "../util/rand.ts";

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;
const LR = 1e-3;

function randomSae(rng: Rng, d: number, m: number, k: number): Sae {
  return {
    cfg: { kind: "topk", dIn: d, dSae: m, k },
    weights: {
      W_enc: rng.normals(d * m, 0.3),
      b_enc: rng.normals(m, 0.1),
      W_dec: rng.normals(m * d, 0.3),
      b_dec: rng.normals(d, 0.1),
    },
  };
}

function assertClose(got: number, want: number, tol: number, what: string): void {
  assertLess(
    Math.abs(got - want),
    tol * Math.max(Math.abs(want), 1e-30),
    `${what}: ${got} vs ${want}`,
  );
}

/** Weights after AdamW steps: see the header for the one-in-10⁴ allowance. */
function assertWeightsClose(got: Float32Array, want: Float32Array, steps: number, what: string) {
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let off = 0, worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= 1e-5 * scale)) {
      off++;
      worst = Math.max(worst, Number.isNaN(e) ? Infinity : e);
    }
  }
  assert(off <= Math.max(1, want.length / 1e4), `${what}: ${off} of ${want.length} elements off`);
  assertLess(worst, 4 * LR * steps, `${what}: worst element off by ${worst}`);
}

function assertStatesClose(got: TrainerState, want: TrainerState, steps: number, what: string) {
  assertEquals([...got.keys()].sort(), [...want.keys()].sort(), `${what}: checkpoint names`);
  for (const [key, w] of want) {
    const g = got.get(key)!;
    assertEquals(g.shape, w.shape, `${what}: shape of ${key}`);
    if (key === "adam.t") assertEquals(g.data, w.data, `${what}: adam.t`);
    else if (key.startsWith("m.")) assertLess(relError(g.data, w.data), 1e-5, `${what}: ${key}`);
    else if (key.startsWith("v.")) assertLess(relError(g.data, w.data), 2e-5, `${what}: ${key}`);
    else assertWeightsClose(g.data, w.data, steps, `${what}: ${key}`);
  }
}

// threads 1: every loop on the main thread; 2: split with the helper thread.
for (
  const [decoderConstraint, threads] of [[true, 2], [false, 2], [true, 1], [false, 1]] as const
) {
  Deno.test(`cpu TopK trainer matches the GPU trainer step for step (decoder constraint ${decoderConstraint}, ${threads} threads)`, async () => {
    const gpu = await testGpu();
    const rng = freshRng(`cpu-topk-vs-gpu-${decoderConstraint}-${threads}`);
    const d = 20 + rng.int(30), k = 4 + rng.int(12), n = 2 * (10 + rng.int(20)) + 1;
    // More latents than a batch can fire (n·k), so some miss every batch.
    const m = n * k + 50 + rng.int(200);
    const s = randomSae(rng, d, m, k);
    // A window of one batch: latents that miss a batch are dead in the next, so auxk runs on
    // every step after the first.
    const opts = { weightDecay: 0.01, gradClip: 0.05, decoderConstraint, deadWindowTokens: n };
    const cpu = await CpuTopKTrainer.create(s, { ...opts, threads });
    const ref = new TopKGpuTrainer(gpu, s, opts);
    try {
      assertEquals(cpu.auxK, ref.auxK);
      let auxSteps = 0, clipped = 0;
      const steps = 4;
      for (let step = 0; step < steps; step++) {
        const x = rng.normals(n * d), g = rng.normals(n * d, 0.01);
        const fc = await cpu.forward(x, n), fr = await ref.forward(x, n);
        assertLess(relError(fc.xhat, fr.xhat), 1e-5, `x̂ at step ${step}`);
        assertClose(fc.mse, fr.mse, 1e-5, `mse at step ${step}`);
        assertEquals(fc.l0, fr.l0, `l0 at step ${step}`);
        const o = { wMse: 0.5, gExt: g, wExt: 0.3, lr: LR };
        const bc = await cpu.backwardAndStep(o), br = await ref.backwardAndStep(o);
        assertClose(bc.gradNorm, br.gradNorm, 1e-5, `gradient norm at step ${step}`);
        assertEquals(bc.dead, br.dead, `dead latents at step ${step}`);
        if (br.aux > 0) auxSteps++;
        if (br.gradNorm > opts.gradClip) clipped++;
        assertEquals(bc.aux > 0, br.aux > 0, `auxk on at step ${step}`);
        if (br.aux > 0) assertClose(bc.aux, br.aux, 1e-4, `auxk loss at step ${step}`);
        assertStatesClose(await cpu.state(), await ref.state(), step + 1, `step ${step}`);
      }
      // The comparison covered the terms it claims to.
      assert(auxSteps >= 2, `auxk ran on ${auxSteps} steps`);
      assert(clipped >= 1, "clipping was never active");
      const g = rng.normals(n * d);
      const x = rng.normals(n * d);
      await cpu.forward(x, n, true);
      await ref.forward(x, n, true);
      assertLess(
        relError(await cpu.inputGradient(g), await ref.inputGradient(g)),
        1e-5,
        "inputGradient",
      );
      const [sc, sr] = [await cpu.toSae(), await ref.toSae()];
      assertEquals(sc.cfg, sr.cfg);
      for (const name of NAMES) {
        assertWeightsClose(sc.weights[name], sr.weights[name], steps, `toSae ${name}`);
      }
    } finally {
      cpu.release();
      ref.release();
    }
  });
}

Deno.test("cpu TopK trainer: a checkpoint moves between it and the GPU trainer", async () => {
  const gpu = await testGpu();
  const rng = freshRng("cpu-topk-checkpoint");
  const d = 16 + rng.int(16), m = 100 + rng.int(100), k = 3 + rng.int(6), n = 61 + rng.int(40);
  const s = randomSae(rng, d, m, k);
  const opts = { weightDecay: 0.01, gradClip: 1, decoderConstraint: true };
  const trained = new TopKGpuTrainer(gpu, s, opts);
  const trainedCpu = await CpuTopKTrainer.create(s, opts);
  const fresh = [await CpuTopKTrainer.create(s, opts), new TopKGpuTrainer(gpu, s, opts)] as const;
  try {
    for (let step = 0; step < 2; step++) {
      const x = rng.normals(n * d);
      for (const t of [trained, trainedCpu]) {
        await t.forward(x, n);
        await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: LR });
      }
    }
    // GPU → CPU and CPU → GPU: the state reads back bit for bit.
    const fromGpu = await trained.state(), fromCpu = await trainedCpu.state();
    await fresh[0].restore(fromGpu);
    await fresh[1].restore(fromCpu);
    for (
      const [got, want] of [[await fresh[0].state(), fromGpu], [await fresh[1].state(), fromCpu]]
    ) {
      assertEquals([...got.keys()].sort(), [...want.keys()].sort());
      for (const [key, w] of want) assertEquals(got.get(key), w, key);
    }
    // And training goes on from it alike (Adam's step count and moments came along).
    await fresh[1].restore(fromGpu);
    const x = rng.normals(n * d);
    const r = [];
    for (const t of fresh) {
      await t.forward(x, n);
      r.push(await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: LR }));
    }
    assertClose(r[0].gradNorm, r[1].gradNorm, 1e-5, "gradient norm after restore");
    assertStatesClose(await fresh[0].state(), await fresh[1].state(), 3, "after restore");
    const bad = new Map(fromGpu);
    bad.delete("v.W_dec");
    await assertRejects(() => fresh[0].restore(bad), Error, "v.W_dec is missing");
  } finally {
    for (const t of [trained, trainedCpu, ...fresh]) t.release();
  }
});

Deno.test("cpu TopK trainer refuses what it does not train, naming the alternative", async () => {
  const gpu = await testGpu();
  const rng = freshRng("cpu-topk-refusals");
  const s = randomSae(rng, 8, 32, 4);
  const opts = { weightDecay: 0, gradClip: 1, decoderConstraint: false };
  await assertRejects(
    () => CpuTopKTrainer.create({ ...s, cfg: { ...s.cfg, kind: "relu" } }, opts),
    Error,
    'trains topk (an SAE, not a transcoder), not a relu SAE; use sae_device "webgpu" or "auto"',
  );
  const t = await CpuTopKTrainer.create(s, opts);
  const buf = createBuffer(gpu.device, 5 * 8 * 4, "test.gext");
  try {
    const x = rng.normals(5 * 8);
    await assertRejects(() => t.forward(x, 5, false, x), Error, "does not train transcoders");
    await assertRejects(
      () => t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 0 }),
      Error,
      "before forward",
    );
    await t.forward(x, 5);
    await assertRejects(
      () => t.backwardAndStep({ wMse: 1, gExt: buf, wExt: 1, lr: 0 }),
      Error,
      "not a GPU buffer",
    );
  } finally {
    buf.destroy();
    t.release();
  }
});
