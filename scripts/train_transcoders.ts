// TopK transcoders and skip transcoders from scratch through the finetune job at the MLP found by
// mlp:<layer>, MSE-only control against kl_mse on the same seed and token stream, each then
// CE-evaluated through the eval job (the MLP's output replaced); then, from the MSE-trained one,
// the experiment job's mse and kl_mse arms on identical data (--experiment-tokens, 0: none): the
// measurement of bench/RESULTS.md's Transcoders section.
//   ./deno run -A scripts/train_transcoders.ts [--tokens 131072] [--d-sae 512] [--k 16]
//     [--layer 1] [--modes transcoder,skip_transcoder] [--experiment-tokens 65536]
//     [--objectives mse,kl_mse]
//     [--extra '{"config": {...}, "mse": {...}, "kl_mse": {...}, "experiment": {...}}']
import { parseArgs } from "node:util";
import { localJobs, runLogged } from "./_local_jobs.ts";
import type { CeEvalResult } from "../eval/ce_eval.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string" },
    "d-sae": { type: "string" },
    k: { type: "string" },
    layer: { type: "string" },
    modes: { type: "string" },
    "eval-sequences": { type: "string" },
    "experiment-tokens": { type: "string" },
    objectives: { type: "string" },
    extra: { type: "string" },
  },
});
const tokens = Number(values.tokens ?? 131_072), dSae = Number(values["d-sae"] ?? 512);
const k = Number(values.k ?? 16), layer = Number(values.layer ?? 1);
const modes = (values.modes ?? "transcoder,skip_transcoder").split(",");
const evalSequences = Number(values["eval-sequences"] ?? 64);
const extra = JSON.parse(values.extra ?? "{}");
const experimentTokens = Number(values["experiment-tokens"] ?? 65_536);
// The experiment starts from the mse run's transcoder: "mse" alone trains just that.
const objectives = (values.objectives ?? "mse,kl_mse").split(",");

const jobs = await localJobs();
const run = (
  kind: "finetune" | "eval" | "experiment",
  config: Record<string, unknown>,
  label: string,
) => runLogged(jobs, kind, config, label, { l0: 1, fvu: 3, kl: 4, deadFraction: 3 });

type Ev = CeEvalResult;
const lines: string[] = [], experiments: string[] = [];
for (const mode of modes) {
  let base = "";
  for (const objective of objectives) {
    const label = `${mode} ${objective}`;
    const t0 = performance.now();
    const ft = await run("finetune", {
      kind: objective,
      tokens,
      hook: `mlp:${layer}`,
      init: { kind: "topk", d_sae: dSae, k, transcoder: mode },
      metrics_every: 32,
      eval_sequences: 0,
      // MSE-only is one phase at kl_mse's MSE-phase LR, decaying over the fraction kl_mse
      // fine-tunes on, so the two runs differ in the last phase's objective only.
      ...(objective === "mse" ? { lr: 1e-3, decay_fraction: 0.05 } : {}),
      ...(extra.config ?? {}),
      ...(extra[objective] ?? {}),
    }, label);
    if (objective === "mse") base = (ft.result as { sae: string }).sae;
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    const ev = await run("eval", {
      sae: (ft.result as { sae: string }).sae,
      sequences: evalSequences,
    }, `${label} eval`);
    const r = ev.result as unknown as Ev;
    lines.push(
      `| ${mode} | ${objective} | ${r.recon.l0?.toFixed(1)} | ${r.recon.fvu.toFixed(3)} | ` +
        `${r.kl.toFixed(4)} | ${r.ceGap.toFixed(4)} | ${r.ceRecovered.toFixed(3)} | ` +
        `${r.ceClean.toFixed(3)} / ${r.ceZeroAblation.toFixed(3)} | ${s} |`,
    );
    console.error(lines.at(-1));
  }
  if (experimentTokens > 0) {
    const ex = await run("experiment", {
      sae: base,
      name: `${mode} mse vs kl_mse`,
      arms: [{ type: "mse" }, { type: "kl_mse" }],
      tokens: experimentTokens,
      eval_sequences: evalSequences,
      ...(extra.experiment ?? {}),
    }, `${mode} experiment`);
    type Row = Record<string, number | string>;
    for (const r of (ex.result as { table: Row[] }).table) {
      experiments.push(
        `| ${mode} | ${r.arm} | ${(r.l0 as number).toFixed(1)} | ${
          (r.fvu as number).toFixed(3)
        } | ` +
          `${(r.kl as number).toFixed(4)} | ${(r.ceGap as number).toFixed(4)} | ` +
          `${((r.ceGapReduction as number) * 100).toFixed(1)}% |`,
      );
      console.error(experiments.at(-1));
    }
  }
}
console.log(
  `tokens ${tokens}, d_sae ${dSae}, k ${k}, mlp:${layer}, eval ${evalSequences} sequences`,
);
console.log(
  "| mode | objective | L0 | FVU (vs y) | KL | CE gap | CE recovered | CE clean / MLP zeroed | train s |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + lines.join("\n"));
if (experiments.length) {
  console.log(`\nexperiment from the mse transcoder: ${experimentTokens} tokens per arm`);
  console.log("| mode | arm | L0 | FVU (vs y) | KL | CE gap | CE-gap reduction |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |\n" + experiments.join("\n"));
}
await jobs.close();
