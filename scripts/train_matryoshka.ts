// Matryoshka BatchTopK through the finetune job, an MSE-only control against kl_mse on the same
// seed and token stream, each SAE then CE-evaluated through the eval job with its per-prefix rows:
// the measurement of bench/RESULTS.md's Matryoshka section. --mode base (default): a base SAE from
// scratch (MSE, --base-tokens), then both arms fine-tune it for --tokens at --lr; --mode scratch:
// both arms from scratch (kl_mse on the last 5%).
//   ./deno run -A scripts/train_matryoshka.ts [--mode base] [--base-tokens 262144]
//     [--tokens 131072] [--lr 2e-4] [--d-sae 1024] [--k 16]
//     [--extra '{"init": {"matryoshka_widths": [64, 256, 1024]}}']
import { parseArgs } from "node:util";
import { localJobs, runLogged } from "./_local_jobs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string" },
    "d-sae": { type: "string" },
    k: { type: "string" },
    "eval-sequences": { type: "string" },
    mode: { type: "string" },
    "base-tokens": { type: "string" },
    lr: { type: "string" },
    extra: { type: "string" },
  },
});
const tokens = Number(values.tokens ?? 131_072), dSae = Number(values["d-sae"] ?? 1024);
const k = Number(values.k ?? 16), evalSequences = Number(values["eval-sequences"] ?? 64);
const extra = JSON.parse(values.extra ?? "{}");
const mode = values.mode ?? "base";
if (mode !== "base" && mode !== "scratch") throw new Error(`--mode base or scratch, not ${mode}`);
const baseTokens = Number(values["base-tokens"] ?? 262_144), lr = Number(values.lr ?? 2e-4);

const jobs = await localJobs();
const run = (kind: "finetune" | "eval", config: Record<string, unknown>, label: string) =>
  runLogged(jobs, kind, config, label, { l0: 1, fvu: 3, deadFraction: 3 });

type Row = { width: number; ceGap: number; ceRecovered: number; fvu: number; l0: number | null };
const lines: string[] = [];
async function evaluate(sae: string, label: string, seconds: string) {
  const ev = await run("eval", { sae, sequences: evalSequences }, `${label} eval`);
  const r = ev.result as { prefixes: Row[] };
  for (const p of r.prefixes) {
    lines.push(
      `| ${label} | ${p.width} | ${p.l0?.toFixed(1)} | ${p.fvu.toFixed(3)} | ` +
        `${p.ceGap.toFixed(4)} | ${p.ceRecovered.toFixed(4)} | ${seconds} |`,
    );
  }
  console.error(lines.slice(-r.prefixes.length).join("\n"));
  return r.prefixes;
}
const init = { kind: "matryoshka_batchtopk", d_sae: dSae, k, ...(extra.init ?? {}) };
const gaps: Record<string, number> = {};
if (mode === "scratch") {
  // Both arms from scratch on the same seed and token stream: kl_mse on the last 5% (the job's
  // default), the MSE-only control one phase at kl_mse's MSE-phase LR decaying over that 5% (as the
  // kinds_frontier preset), so the two differ in the last phase's objective only.
  for (const objective of ["mse", "kl_mse"]) {
    const t0 = performance.now();
    const ft = await run("finetune", {
      kind: objective,
      tokens,
      init,
      metrics_every: 32,
      eval_sequences: 0,
      ...(objective === "mse" ? { lr: 1e-3, decay_fraction: 0.05 } : {}),
      ...(extra.config ?? {}),
    }, objective);
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    const rows = await evaluate((ft.result as { sae: string }).sae, objective, s);
    gaps[objective] = rows.at(-1)!.ceGap;
  }
} else {
  // A base SAE from scratch (MSE only), then each arm fine-tunes it on the same seed and tokens at
  // `lr`: the demo's protocol, with the base trained here.
  const t0 = performance.now();
  const base = await run("finetune", {
    kind: "mse",
    tokens: baseTokens,
    init,
    lr: 1e-3,
    decay_fraction: 0.05,
    metrics_every: 32,
    eval_sequences: 0,
  }, "base");
  const baseId = (base.result as { sae: string }).sae;
  await evaluate(baseId, "base (mse from scratch)", ((performance.now() - t0) / 1000).toFixed(0));
  for (const objective of ["mse", "kl_mse"]) {
    const t1 = performance.now();
    const ft = await run("finetune", {
      kind: objective,
      sae: baseId,
      tokens,
      lr,
      metrics_every: 32,
      eval_sequences: 0,
      ...(extra.config ?? {}),
    }, objective);
    const s = ((performance.now() - t1) / 1000).toFixed(0);
    const rows = await evaluate((ft.result as { sae: string }).sae, objective, s);
    gaps[objective] = rows.at(-1)!.ceGap;
  }
}
console.log(
  `mode ${mode}, tokens ${tokens}` + (mode === "base" ? ` (base ${baseTokens}, lr ${lr})` : "") +
    `, d_sae ${dSae}, k ${k}, eval ${evalSequences} sequences`,
);
console.log("| SAE | prefix | L0 | FVU | CE gap | CE recovered | train s |");
console.log("| --- | --- | --- | --- | --- | --- | --- |\n" + lines.join("\n"));
console.log(
  `KL+MSE removes ${(100 * (1 - gaps.kl_mse / gaps.mse)).toFixed(1)}% of the MSE arm's CE gap ` +
    `(${gaps.mse.toFixed(4)} → ${gaps.kl_mse.toFixed(4)})`,
);
await jobs.close();
