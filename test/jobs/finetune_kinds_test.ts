// Every SAE kind trains from scratch through the finetune job with the GPU trainers (MSE phase,
// then kl_mse), is evaluated, and is written in SAELens layout with its threshold where it has one.
import { assert, assertEquals } from "@std/assert";
import { openDatabase } from "../../db/client.ts";
import { MetricsWriter } from "../../db/metrics_writer.ts";
import { models } from "../../db/schema.ts";
import { EventHub, MemoryEventStore } from "../../jobs/events.ts";
import { finetuneHandler } from "../../jobs/finetune_job.ts";
import { MemoryJobStore } from "../../jobs/memory_store.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../../main.ts";
import { loadSae } from "../../sae/io.ts";
import { createSaeTrainer } from "../../sae/trainers.ts";
import { testGpu } from "../util/gpu.ts";

Deno.test({
  name: "relu, topk, batchtopk and jumprelu SAEs train, evaluate and save through the job",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const database = await openDatabase({ dataDir: "memory://" });
    await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
    const events = new EventHub(new MemoryEventStore());
    const runner = new JobRunner(new MemoryJobStore(), events, { pollMs: 20 });
    runner.register(
      "finetune",
      finetuneHandler({
        database,
        gpu: await testGpu(),
        dataDir,
        metrics: new MetricsWriter(database.db),
        createTrainer: createSaeTrainer,
      }),
    );
    runner.start();
    try {
      for (const kind of ["relu", "topk", "batchtopk", "jumprelu"] as const) {
        const job = await runner.submit("finetune", {
          kind: "kl_mse",
          tokens: 4 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          finetune_fraction: 0.5,
          pretrain_lr: 1e-3,
          init: { kind, d_sae: 64, k: 4, l1_coefficient: 0.01 },
          metrics_every: 1,
          eval_sequences: 2,
        });
        type Result = { sae: string; eval: { ceSpliced: number } };
        let result: Result | null = null;
        const errors: unknown[] = [];
        for await (const e of events.subscribe(job.id)) {
          if (e.type === "result") result = e.data as Result;
          if (e.type === "error") errors.push(e.data);
        }
        assertEquals(errors, [], kind);
        const r = result as Result | null;
        assert(r && Number.isFinite(r.eval.ceSpliced), `${kind}: evaluated`);
        const sae = await loadSae(`${dataDir}/saes/${r.sae}`);
        assertEquals(sae.cfg.kind, kind);
        if (kind === "batchtopk") assert(sae.weights.threshold![0] > 0, "threshold was set");
        if (kind === "jumprelu") assertEquals(sae.weights.threshold!.length, 64);
      }
    } finally {
      await runner.stop();
      await database.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
