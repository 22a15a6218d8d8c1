// The kinds_frontier experiment on the embedded default, run as the service runs it (the
// experiment job's preset, in-process): every kind at several sparsities from scratch on identical
// data, MSE-only and KL+MSE side by side. Writes the table and the CE-gap-vs-L0 and FVU-vs-L0 plots.
//   ./deno run -A scripts/kinds_frontier.ts [--config '{"tokens": 65536}'] [--out bench/kinds_frontier]
// Runs already in the output's results.json that this config does not plan are kept (rerunning one
// kind); same-named runs are replaced.
import { parseArgs } from "node:util";
import { eq } from "drizzle-orm";
import { experiments } from "../db/schema.ts";
import {
  frontierPlots,
  type FrontierResult,
  frontierTable,
} from "../experiments/kinds_frontier.ts";
import type { KindsFrontierResult } from "../jobs/kinds_frontier_job.ts";
import { KindsFrontierPreset } from "../train/experiment_config.ts";
import { localExperiments } from "./_local_jobs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { config: { type: "string" }, out: { type: "string" } },
});
const cfg = KindsFrontierPreset.parse({
  ...JSON.parse(values.config ?? "{}"),
  preset: "kinds_frontier",
});
const out = values.out ?? "bench/out/kinds_frontier";

const jobs = await localExperiments();
let fresh: FrontierResult[];
try {
  const run = await jobs.run(cfg, undefined, (m) => console.error(m));
  if ("error" in run) throw new Error(`kinds_frontier failed: ${run.error}`);
  const [row] = await jobs.database.db.select().from(experiments)
    .where(eq(experiments.jobId, run.id));
  fresh = (row.result as KindsFrontierResult).runs;
} finally {
  await jobs.close();
}
const names = new Set(fresh.map((r) => r.name));
const kept: FrontierResult[] = await Deno.readTextFile(`${out}/results.json`)
  .then((t) => (JSON.parse(t).results as FrontierResult[]).filter((r) => !names.has(r.name)))
  .catch((e) => {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  });
const results = [...kept, ...fresh];
await Deno.mkdir(out, { recursive: true });
const plots = frontierPlots(results);
await Deno.writeTextFile(`${out}/ce_gap_vs_l0.svg`, plots.ceGap);
await Deno.writeTextFile(`${out}/fvu_vs_l0.svg`, plots.fvu);
await Deno.writeTextFile(`${out}/results.json`, JSON.stringify({ config: cfg, results }, null, 1));
console.log(frontierTable(results));
