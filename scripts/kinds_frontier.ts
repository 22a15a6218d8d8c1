// The kinds_frontier experiment on the embedded default, run as the service runs it (the
// experiment job's preset, in-process): every kind at several sparsities from scratch on identical
// data, MSE-only and KL+MSE side by side. Writes the table and the CE-gap-vs-L0 and FVU-vs-L0 plots.
//   ./deno run -A scripts/kinds_frontier.ts [--config '{"tokens": 65536}'] [--out bench/kinds_frontier]
// Runs already in the output's results.json that this config does not plan are kept (rerunning one
// kind); same-named runs are replaced.
import { parseArgs } from "node:util";
import { eq } from "drizzle-orm";
import { openDatabase } from "../db/client.ts";
import { MetricsWriter } from "../db/metrics_writer.ts";
import { experiments, models } from "../db/schema.ts";
import {
  frontierPlots,
  type FrontierResult,
  frontierTable,
} from "../experiments/kinds_frontier.ts";
import { acquireGpu } from "../gpu/device.ts";
import { EventHub, MemoryEventStore } from "../jobs/events.ts";
import { experimentHandler } from "../jobs/experiment_job.ts";
import type { KindsFrontierResult } from "../jobs/kinds_frontier_job.ts";
import { MemoryJobStore } from "../jobs/memory_store.ts";
import { JobRunner } from "../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../main.ts";
import { createSaeTrainer } from "../sae/trainers.ts";
import { KindsFrontierPreset } from "../train/experiment_config.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { config: { type: "string" }, out: { type: "string" } },
});
const cfg = KindsFrontierPreset.parse({
  ...JSON.parse(values.config ?? "{}"),
  preset: "kinds_frontier",
});
const out = values.out ?? "bench/out/kinds_frontier";

const gpu = await acquireGpu({ log: false });
const database = await openDatabase({ dataDir: "memory://" });
await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
const work = await Deno.makeTempDir({ prefix: "splice-frontier-" });
const events = new EventHub(new MemoryEventStore());
const runner = new JobRunner(new MemoryJobStore(), events, { pollMs: 50 });
runner.register(
  "experiment",
  experimentHandler({
    database,
    gpu,
    dataDir: work,
    metrics: new MetricsWriter(database.db),
    createTrainer: createSaeTrainer,
  }),
);
runner.start();
let fresh: FrontierResult[];
try {
  const job = await runner.submit("experiment", cfg);
  let error = "";
  for await (const e of events.subscribe(job.id)) {
    if (e.type === "log") console.error((e.data as { message: string }).message);
    if (e.type === "error") error = (e.data as { message: string }).message;
  }
  if (error) throw new Error(`kinds_frontier failed: ${error}`);
  const [row] = await database.db.select().from(experiments).where(eq(experiments.jobId, job.id));
  fresh = (row.result as KindsFrontierResult).runs;
} finally {
  await runner.stop();
  await database.close();
  await Deno.remove(work, { recursive: true });
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
