// The gated SAE's done-when run (issue #18) in-process, through the same job handlers as
// POST /finetunes and POST /evals on the embedded default (tiny-neox + Brown):
//   1. a gated SAE from scratch, MSE-only (only init.kind, d_sae set; the MSE phase's defaults);
//   2. from it, the MSE-only control and the KL+MSE fine-tune on identical data (same seed, same
//      token stream), at the demo's settings;
//   3. the eval job on all three.
//   ./deno run -A scripts/train_gated.ts [--base-tokens 262144] [--tokens 262144] [--d-sae 1024]
import { parseArgs } from "node:util";
import { pretrainLrFor } from "../train/scratch_defaults.ts";
import { localJobs, runLogged } from "./_local_jobs.ts";
import type { CeEvalResult } from "../eval/ce_eval.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "base-tokens": { type: "string" },
    tokens: { type: "string" },
    "d-sae": { type: "string" },
    "eval-sequences": { type: "string" },
    seed: { type: "string" },
  },
});
const baseTokens = Number(values["base-tokens"] ?? 262_144);
const tokens = Number(values.tokens ?? 262_144);
const dSae = Number(values["d-sae"] ?? 1024);
const sequences = Number(values["eval-sequences"] ?? 64);
const seed = Number(values.seed ?? 0);

const jobs = await localJobs();
const run = (kind: "finetune" | "eval", config: Record<string, unknown>, label: string) =>
  runLogged(jobs, kind, config, label, { l0: 1, fvu: 3, deadFraction: 3, l1Lambda: 4 });

type Eval = CeEvalResult;
const rows: Array<[string, Eval]> = [];
try {
  const base = await run("finetune", {
    kind: "mse",
    init: { kind: "gated", d_sae: dSae },
    tokens: baseTokens,
    // MSE-only from scratch is one phase at `lr`: the kind's MSE-phase LR, decaying at the end.
    lr: pretrainLrFor("gated", undefined),
    decay_fraction: 0.05,
    seed,
    metrics_every: 32,
    eval_sequences: 0,
  }, "base");
  const arms: Record<string, string> = { base: base.id };
  for (const kind of ["mse", "kl_mse"]) {
    const arm = await run("finetune", {
      kind,
      sae: base.id,
      tokens,
      lr: 2e-4,
      seed,
      metrics_every: 32,
      eval_sequences: 0,
    }, kind);
    arms[kind] = arm.id;
  }
  for (const [name, id] of Object.entries(arms)) {
    const ev = await run("eval", { sae: id, sequences }, `eval ${name}`);
    rows.push([name, ev.result as unknown as Eval]);
  }
} finally {
  const f = (v: number) => v.toFixed(4);
  console.log(
    `gated d_sae ${dSae}: base ${baseTokens} tokens from scratch (MSE), arms ${tokens} tokens at ` +
      `LR 2e-4, eval ${sequences} × 128 held-out tokens\n` +
      "| arm | CE clean | CE spliced | CE zero | recovered | CE gap | KL | FVU | L0 |\n" +
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const [name, e] of rows) {
    console.log(
      `| ${name} | ${f(e.ceClean)} | ${f(e.ceSpliced)} | ${f(e.ceZeroAblation)} | ` +
        `${f(e.ceRecovered)} | ${f(e.ceGap)} | ${f(e.kl)} | ${f(e.recon.fvu)} | ` +
        `${e.recon.l0?.toFixed(1)} |`,
    );
  }
  const mse = rows.find((r) => r[0] === "mse")?.[1], kl = rows.find((r) => r[0] === "kl_mse")?.[1];
  if (mse && kl) {
    console.log(
      `KL+MSE removes ${(100 * (1 - kl.ceGap / mse.ceGap)).toFixed(1)}% of the MSE arm's CE gap`,
    );
  }
  await jobs.close();
}
