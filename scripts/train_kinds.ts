// Trains each SAE kind from scratch with its defaults (only init.kind and d_sae set; kl_mse on the
// last 5%) through the finetune job, and prints L0 at evaluation, FVU and CE gap per kind: the
// measurement of bench/RESULTS.md's "Every kind with its defaults".
//   ./deno run -A scripts/train_kinds.ts [--tokens 524288] [--d-sae 1024] [--kinds relu,jumprelu]
import { parseArgs } from "node:util";
import { openDatabase } from "../db/client.ts";
import { MetricsWriter } from "../db/metrics_writer.ts";
import { models } from "../db/schema.ts";
import { acquireGpu } from "../gpu/device.ts";
import { EventHub, MemoryEventStore } from "../jobs/events.ts";
import { finetuneHandler } from "../jobs/finetune_job.ts";
import { MemoryJobStore } from "../jobs/memory_store.ts";
import { JobRunner } from "../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../main.ts";
import { createSaeTrainer } from "../sae/trainers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string" },
    "d-sae": { type: "string" },
    kinds: { type: "string" },
    extra: { type: "string" },
  },
});
const tokens = Number(values.tokens ?? 524_288), dSae = Number(values["d-sae"] ?? 1024);
const kinds = (values.kinds ?? "topk,batchtopk,relu,jumprelu").split(",");
const extra = JSON.parse(values.extra ?? "{}");
const gpu = await acquireGpu({ log: false });
const database = await openDatabase({ dataDir: "memory://" });
await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
const work = await Deno.makeTempDir({ prefix: "splice-kinds-" });
const events = new EventHub(new MemoryEventStore());
const runner = new JobRunner(new MemoryJobStore(), events, { pollMs: 50 });
runner.register(
  "finetune",
  finetuneHandler({
    database,
    gpu,
    dataDir: work,
    metrics: new MetricsWriter(database.db),
    createTrainer: createSaeTrainer,
  }),
);
runner.start();
const rows: string[] = [];
for (const kind of kinds) {
  const t0 = performance.now();
  const job = await runner.submit("finetune", {
    kind: "kl_mse",
    tokens,
    init: { kind, d_sae: dSae, ...(extra.init ?? {}) },
    metrics_every: 32,
    ...(extra.config ?? {}),
  });
  type Eval = { ceGap: number; recon: { fvu: number; l0: number | null } };
  let ev: Eval | null = null, error = "";
  for await (const e of events.subscribe(job.id)) {
    if (e.type === "metrics") {
      const m = e.data as Record<string, number>;
      console.error(
        `${kind} ${m.phase} step ${m.step} l0 ${m.l0.toFixed(1)} fvu ${m.fvu?.toFixed(3)} ` +
          `dead ${m.deadFraction?.toFixed(3)} λ ${m.l1Lambda?.toPrecision(3)}`,
      );
    } else if (e.type === "result") ev = (e.data as { eval: Eval }).eval;
    else if (e.type === "error") error = (e.data as { message: string }).message;
  }
  const s = ((performance.now() - t0) / 1000).toFixed(0);
  rows.push(
    ev
      ? `| ${kind} | ${ev.recon.l0?.toFixed(1)} | ${ev.recon.fvu.toFixed(3)} | ${
        ev.ceGap.toFixed(3)
      } | ${s} |`
      : `| ${kind} | failed: ${error} | | | ${s} |`,
  );
  console.error(rows.at(-1));
}
await runner.stop();
console.log(`tokens ${tokens}, d_sae ${dSae}\n| kind | L0 at eval | FVU | CE gap | s |`);
console.log("| --- | --- | --- | --- | --- |\n" + rows.join("\n"));
await database.close();
await Deno.remove(work, { recursive: true });
