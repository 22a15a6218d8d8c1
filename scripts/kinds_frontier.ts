// The kinds_frontier experiment on the embedded default: every kind at several sparsities from
// scratch on identical data, MSE-only and KL+MSE side by side. Writes the table and the CE-gap-vs-L0
// and FVU-vs-L0 plots.
//   ./deno run -A scripts/kinds_frontier.ts [--config '{"tokens": 65536}'] [--out bench/out/kinds_frontier]
// Runs already in the output's results.json that this config does not plan are kept.
import { parseArgs } from "node:util";
import {
  frontierPlots,
  type FrontierResult,
  frontierTable,
  KindsFrontierConfig,
  planKindsFrontier,
} from "../experiments/kinds_frontier.ts";
import { localFinetunes } from "./_local_jobs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { config: { type: "string" }, out: { type: "string" } },
});
const cfg = KindsFrontierConfig.parse(JSON.parse(values.config ?? "{}"));
const out = values.out ?? "bench/out/kinds_frontier";
const plan = planKindsFrontier(cfg);
// Results already in `out` for runs not in this plan stay (e.g. rerunning one kind); same-named
// runs are replaced.
const names = new Set(plan.map((r) => r.name));
const kept: FrontierResult[] = await Deno.readTextFile(`${out}/results.json`)
  .then((t) => (JSON.parse(t).results as FrontierResult[]).filter((r) => !names.has(r.name)))
  .catch((e) => {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  });
const jobs = await localFinetunes();
const results: FrontierResult[] = [];
try {
  for (const run of plan) {
    const t0 = performance.now();
    const r = await jobs.run(run.job);
    type Eval = { ceGap: number; recon: { fvu: number; l0: number | null } };
    const ev = "result" in r ? (r.result as { eval: Eval | null }).eval : null;
    results.push({
      ...run,
      l0: ev?.recon.l0 ?? null,
      fvu: ev?.recon.fvu ?? null,
      ceGap: ev?.ceGap ?? null,
      ...("error" in r ? { error: r.error } : {}),
      seconds: (performance.now() - t0) / 1000,
    });
    console.error(frontierTable(results.slice(-1)).split("\n")[2]);
  }
} finally {
  await jobs.close();
}
await Deno.mkdir(out, { recursive: true });
results.unshift(...kept);
const plots = frontierPlots(results);
await Deno.writeTextFile(`${out}/ce_gap_vs_l0.svg`, plots.ceGap);
await Deno.writeTextFile(`${out}/fvu_vs_l0.svg`, plots.fvu);
await Deno.writeTextFile(`${out}/results.json`, JSON.stringify({ config: cfg, results }, null, 1));
console.log(frontierTable(results));
