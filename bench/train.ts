// Training step throughput on the embedded default (tiny-neox, hook after block 1, TopK n=2048
// k=16, 8×128 tokens a step): one LM forward (the yardstick), the MSE step on cached activations
// (SAE only, on each SAE device: webgpu and cpu), the LM side of a KL step (prefix + the KL
// session, which runs the clean and spliced suffix), and whole loop steps of train/finetune.ts for
// mse, kl_mse and e2e with the SAE where sae_device "auto" puts it, and kl_mse with it on the other
// device. Prints peak RSS, `kl_step_over_forward <ratio>` (the LM side of a KL step over one
// forward, same batch, same run) and, on the default shape, `kl_step_vs_pytorch <ratio>`: splice's
// whole KL+MSE loop step throughput (SAE on the auto device) over tools/python/kl_step_torch.py's
// on the same cores. Writes bench/out/train.json.
//   deno task bench train   [--ep auto|cpu|wasm|webgpu] (BENCH_STEPS=n steps per row, default 6)
// At the paper's scale, a Pythia-160M-size graph from tools/python/make_pythia_graph.py:
//   deno task bench train --model pythia160m.onnx --hook /blocks.8/Add_2_output_0 \
//     --d-sae 16384 --k 64 --batch 2 --seq 1024 [--objectives kl_mse]
// adds the projected time of a 25M-token KL+MSE fine-tune at the measured rate.
import { parseArgs } from "node:util";
import { acquireGpu } from "../gpu/device.ts";
import { loadBrown } from "../data/brown.ts";
import { packSequences, SequenceBatches } from "../data/sequences.ts";
import { byteTokenizer } from "../data/tokenizer.ts";
import { decodeModel } from "../lm/onnx.ts";
import { chooseEp, createSession, type EpRequest, ort, runtimeStatus } from "../lm/session.ts";
import { prefix } from "../lm/surgery.ts";
import { listHookPoints } from "../lm/hooks.ts";
import { initSae } from "../sae/init.ts";
import { autoSaeDevice, createTrainer, SAE_DEVICES, type SaeDevice } from "../sae/sae_device.ts";
import type { OwnedTrainer } from "../sae/trainer.ts";
import { createLmStepSessions, runFinetune } from "../train/finetune.ts";
import { microBatchFor, stepShapeOf } from "../train/memory.ts";
import { SpliceLm } from "../train/splice_lm.ts";
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
    ep: { type: "string" },
    objectives: { type: "string" },
  },
});
const HOOK = a.hook ?? "/blocks.1/Add_2_output_0";
const B = Number(a.batch ?? 8), T = Number(a.seq ?? 128), N = B * T;
const STEPS = Number(Deno.env.get("BENCH_STEPS") ?? 6);
const gpu = await acquireGpu({ log: false });
const ep = await chooseEp((a.ep ?? "auto") as EpRequest);
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
const nativeCpu = (await runtimeStatus()).eps.cpu;
const autoDevice = autoSaeDevice(gpu.info, nativeCpu);
// The CPU trainer runs on the native runtime: without it, only the WebGPU rows.
const devices = SAE_DEVICES.filter((dev) => dev !== "cpu" || nativeCpu.available);
const trainerOn = (dev: SaeDevice): Promise<OwnedTrainer> =>
  createTrainer(gpu, sae, { ...opts, saeDevice: dev });
const rows: { step: string; ms: number; tokPerS: number; overForward: number }[] = [];

// One plain forward of the whole LM on the same batch: the yardstick.
const full = await createSession(model, { ep, device });
const ids = new ort.Tensor("int64", new SequenceBatches(seqs, B, 0, false).next(), [B, T]);
await full.run({ [full.inputNames[0]]: ids });
let t0 = performance.now();
for (let s = 0; s < STEPS; s++) await full.run({ [full.inputNames[0]]: ids });
const forwardMs = (performance.now() - t0) / STEPS;
await full.release();
const add = (step: string, ms: number) =>
  rows.push({ step, ms, tokPerS: N / (ms / 1000), overForward: ms / forwardMs });
add("LM forward", forwardMs);

// The MSE step on cached activations: the SAE alone, on each device.
{
  const pre = await createSession(prefix(model, HOOK), { ep, device });
  const x = (await pre.run({ [pre.inputNames[0]]: ids }))[HOOK].data as Float32Array;
  await pre.release();
  for (const dev of devices) {
    const t = await trainerOn(dev);
    const step = async () => {
      await t.forward(x, N);
      await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-4 });
    };
    await step();
    t0 = performance.now();
    for (let s = 0; s < STEPS; s++) await step();
    add(`mse (cached activations), SAE on ${dev}`, (performance.now() - t0) / STEPS);
    t.release();
  }
}

// The LM side of a KL step alone: the prefix (clean activations) and the KL session (clean and
// spliced suffix, KL, ∂KL/∂x̂), with x̂ a perturbed x: what the graph work is measured by.
const objectives = (a.objectives ?? "mse,kl_mse,e2e").split(",") as Objective[];
const microBatch = microBatchFor(stepShapeOf(model, { batch: B, seq: T, dModel: width }), ep);
if (objectives.includes("kl_mse")) {
  const sessions = await createLmStepSessions(model, HOOK, true, ep, device);
  const lm = await SpliceLm.create(sessions, {
    hook: HOOK,
    width,
    batch: B,
    seq: T,
    microBatch,
    ep,
    device,
  });
  const batch = new SequenceBatches(seqs, B, 2, true).next();
  const step = async () => {
    const { clean } = await lm.activations(batch);
    const x = clean as Float32Array; // host activations: these sessions are not zero-copy
    await lm.kl(x, x.map((v, i) => v * (1 + 0.05 * Math.sin(i))));
  };
  await step();
  t0 = performance.now();
  for (let s = 0; s < STEPS; s++) await step();
  add(`LM side of a kl step (micro-batch ${microBatch})`, (performance.now() - t0) / STEPS);
  await lm.release();
  await sessions.release();
}

// Whole loop steps with the SAE where auto puts it, and kl_mse with it on the other device too;
// sessions are made outside the timing, the first step is a warm-up.
const loops = objectives.map((objective) => ({ objective, dev: autoDevice }));
if (objectives.includes("kl_mse")) {
  for (const dev of devices) if (dev !== autoDevice) loops.push({ objective: "kl_mse", dev });
}
const loopRow = (objective: Objective, dev: SaeDevice) => `${objective} loop step, SAE on ${dev}`;
for (const { objective, dev } of loops) {
  const lm = await createLmStepSessions(model, HOOK, objective !== "mse", ep, device);
  const trainer = await trainerOn(dev);
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
    microBatch,
    metricsEvery: 1,
    onMetrics: () => {
      const now = performance.now();
      times.push(now - last);
      last = now;
    },
  }, lm);
  await lm.release();
  trainer.release();
  add(loopRow(objective, dev), times.slice(1).reduce((a, b) => a + b, 0) / STEPS);
}

printTable(rows);
const klRow = loopRow("kl_mse", autoDevice);
const klRate = rows.find((r) => r.step === klRow)?.tokPerS ?? 0;
const projectedMinutes = 25e6 / klRate / 60;
console.log(
  `projected 25M-token KL+MSE fine-tune at ${klRate.toFixed(0)} tok/s: ${
    projectedMinutes.toFixed(1)
  } min (${gpu.info.description}, ${ep} EP, SAE on ${autoDevice}, ${B}×${T} tokens a step)`,
);
const klOverForward = rows.find((r) => r.step.startsWith("LM side of a kl step"))?.overForward;
const loopOverForward = rows.find((r) => r.step === klRow)?.overForward;
const peakRssBytes = await peakRss();
console.log(`peak RSS ${(peakRssBytes / 2 ** 30).toFixed(2)} GB`);
// The same KL+MSE step in PyTorch (tools/python/kl_step_torch.py: forward clean, forward spliced,
// KL, alpha, backward, clip, AdamW) on the same batch shape and cores, measured in this run.
const torch = !a.model && B === 8 && T === 128 ? await torchStep() : null;
const klVsTorch = torch && klRate ? klRate / torch.tokens_per_second : null;
const path = await writeJson("train", {
  adapter: gpu.info.description,
  ep,
  saeDevice: autoDevice,
  batch: { B, T },
  steps: STEPS,
  rows,
  klStepOverForward: klOverForward,
  klLoopStepOverForward: loopOverForward,
  microBatch,
  peakRssBytes,
  pytorch: torch,
  klStepVsPytorch: klVsTorch,
  model: a.model ?? "tiny-neox",
  hook: HOOK,
  sae: { dIn: width, dSae: sae.cfg.dSae, k: sae.cfg.k },
  projectedMinutesFor25MTokens: projectedMinutes,
});
console.log(`wrote ${path}`);
if (torch) {
  console.log(
    `pytorch KL+MSE step: ${torch.tokens_per_second.toFixed(0)} tok/s (${torch.threads} threads)`,
  );
}
if (klOverForward !== undefined) console.log(`kl_step_over_forward ${klOverForward.toFixed(3)}`);
if (klVsTorch !== null) {
  console.log(`kl_step_vs_pytorch ${klVsTorch.toFixed(3)} (SAE on ${autoDevice}: sae_device auto)`);
}

/** The process's peak resident set (VmHWM), in bytes. */
async function peakRss(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status").catch(() => "");
  const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : Deno.memoryUsage().rss;
}

async function torchStep(): Promise<{ tokens_per_second: number; threads: number } | null> {
  const script = new URL("../tools/python/kl_step_torch.py", import.meta.url).pathname;
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [script, "--steps", String(STEPS)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      console.log(
        `pytorch step: failed (${new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)})`,
      );
      return null;
    }
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    return JSON.parse(lines.at(-1)!);
  } catch (e) {
    console.log(`pytorch step: not run (${(e as Error).message}; needs Debian's python3-torch)`);
    return null;
  }
}
