// Training step throughput on the embedded default (tiny-neox, hook after block 1, TopK n=2048
// k=16, 8×128 tokens a step): the MSE step on cached activations (SAE only), and whole loop steps
// of train/finetune.ts for mse (LM tap + SAE), kl_mse and e2e (tap + SAE + KL suffix forward and
// backward). The last line is `kl_step_over_forward <ratio>`: one kl_mse step over one plain LM
// forward of the same batch, timed in the same run (goal ≤ 3.5). Writes bench/out/train.json.
//   deno task bench train   (BENCH_STEPS=n steps per row, default 6)
// At the paper's scale, on a GPU: a Pythia-160M-size graph from tools/python/make_pythia_graph.py,
//   deno task bench train --model pythia160m.onnx --hook /blocks.8/Add_2_output_0 \
//     --d-sae 16384 --k 64 --batch 2 --seq 1024
// adds the projected time of a 25M-token KL+MSE fine-tune at the measured rate.
import { parseArgs } from "node:util";
import { acquireGpu } from "../gpu/device.ts";
import { loadBrown } from "../data/brown.ts";
import { packSequences, SequenceBatches } from "../data/sequences.ts";
import { byteTokenizer } from "../data/tokenizer.ts";
import { chooseEp } from "../jobs/finetune_job.ts";
import { decodeModel, encodeModel } from "../lm/onnx.ts";
import { createSession, ort } from "../lm/session.ts";
import { tapModel } from "../lm/splice_grad.ts";
import { listHookPoints } from "../lm/hooks.ts";
import { initSae } from "../sae/init.ts";
import { TopKGpuTrainer } from "../sae/topk_trainer.ts";
import { createLmStepSessions, runFinetune } from "../train/finetune.ts";
import type { Objective } from "../train/objective.ts";
import { printTable, writeJson } from "./_report.ts";

const { values: a } = parseArgs({
  args: Deno.args.filter((x) => x !== "train"),
  options: {
    model: { type: "string" },
    hook: { type: "string" },
    "d-sae": { type: "string" },
    k: { type: "string" },
    batch: { type: "string" },
    seq: { type: "string" },
  },
});
const HOOK = a.hook ?? "/blocks.1/Add_2_output_0";
const B = Number(a.batch ?? 8), T = Number(a.seq ?? 128), N = B * T;
const STEPS = Number(Deno.env.get("BENCH_STEPS") ?? 6);
const gpu = await acquireGpu({ log: false });
const ep = chooseEp(gpu, "auto");
const device = ep === "webgpu" ? gpu.device : undefined;
const model = decodeModel(
  await Deno.readFile(a.model ?? new URL("../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);
const seqs = packSequences([byteTokenizer.encode((await loadBrown()).validation)], T);
const width = Number(
  listHookPoints(model).find((h) => h.name === HOOK)?.dims[2] ??
    (() => {
      throw new Error(`hook ${HOOK} is not a residual-stream tensor of the model`);
    })(),
);
const sae = initSae({
  kind: "topk",
  dIn: width,
  dSae: Number(a["d-sae"] ?? 2048),
  k: Number(a.k ?? 16),
}, { seed: 0 });
const opts = { weightDecay: 0.01, gradClip: 1, decoderConstraint: false };
const rows: { step: string; ms: number; tokPerS: number; overForward: number }[] = [];

// One plain forward of the whole LM on the same batch: the yardstick.
const full = await createSession(encodeModel(model), { ep, device });
const ids = new ort.Tensor("int64", new SequenceBatches(seqs, B, 0, false).next(), [B, T]);
await full.run({ [full.inputNames[0]]: ids });
let t0 = performance.now();
for (let s = 0; s < STEPS; s++) await full.run({ [full.inputNames[0]]: ids });
const forwardMs = (performance.now() - t0) / STEPS;
await full.release();
const add = (step: string, ms: number) =>
  rows.push({ step, ms, tokPerS: N / (ms / 1000), overForward: ms / forwardMs });
add("LM forward", forwardMs);

// The MSE step on cached activations: the SAE alone.
{
  const tap = await createSession(encodeModel(tapModel(model, HOOK)), { ep, device });
  const x = (await tap.run({ [tap.inputNames[0]]: ids }))[HOOK].data as Float32Array;
  await tap.release();
  const t = new TopKGpuTrainer(gpu, sae, opts);
  const step = async () => {
    await t.forward(x, N);
    await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-4 });
  };
  await step();
  t0 = performance.now();
  for (let s = 0; s < STEPS; s++) await step();
  add("mse (cached activations)", (performance.now() - t0) / STEPS);
  t.release();
}

// Whole loop steps; sessions are made outside the timing, the first step is a warm-up.
for (const objective of ["mse", "kl_mse", "e2e"] as Objective[]) {
  const lm = await createLmStepSessions(model, HOOK, objective !== "mse", ep, device);
  const trainer = new TopKGpuTrainer(gpu, sae, opts);
  const times: number[] = [];
  let last = performance.now();
  await runFinetune({
    objective,
    model,
    hook: HOOK,
    ep,
    device,
    sae: trainer,
    data: new SequenceBatches(seqs, B, 1, true),
    batchSize: B,
    seqLen: T,
    steps: STEPS + 1,
    schedule: { lr: 1e-4 },
    metricsEvery: 1,
    onMetrics: () => {
      const now = performance.now();
      times.push(now - last);
      last = now;
    },
  }, lm);
  await lm.release();
  trainer.release();
  add(`${objective} loop step`, times.slice(1).reduce((a, b) => a + b, 0) / STEPS);
}

printTable(rows);
const klRate = rows.find((r) => r.step === "kl_mse loop step")!.tokPerS;
const projectedMinutes = 25e6 / klRate / 60;
console.log(
  `projected 25M-token KL+MSE fine-tune at ${klRate.toFixed(0)} tok/s: ${
    projectedMinutes.toFixed(1)
  } min (${gpu.info.description}, ${ep} EP, ${B}×${T} tokens a step)`,
);
const klOverForward = rows.find((r) => r.step === "kl_mse loop step")!.overForward;
const path = await writeJson("train", {
  adapter: gpu.info.description,
  ep,
  batch: { B, T },
  steps: STEPS,
  rows,
  klStepOverForward: klOverForward,
  model: a.model ?? "tiny-neox",
  hook: HOOK,
  sae: { dIn: width, dSae: sae.cfg.dSae, k: sae.cfg.k },
  projectedMinutesFor25MTokens: projectedMinutes,
});
console.log(`wrote ${path}`);
console.log(`kl_step_over_forward ${klOverForward.toFixed(3)}`);
