// Job handlers in-process (in-memory database with the embedded model, a job runner): for scripts
// that run many training jobs or an experiment and read their results, without the HTTP service.
import { openDatabase } from "../db/client.ts";
import { MetricsWriter } from "../db/metrics_writer.ts";
import { models } from "../db/schema.ts";
import { acquireGpu } from "../gpu/device.ts";
import { EventHub, MemoryEventStore } from "../jobs/events.ts";
import { experimentHandler } from "../jobs/experiment_job.ts";
import { type FinetuneDeps, finetuneHandler } from "../jobs/finetune_job.ts";
import { MemoryJobStore } from "../jobs/memory_store.ts";
import { type JobHandler, JobRunner } from "../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../main.ts";
import { createSaeTrainer } from "../sae/trainers.ts";

export function localFinetunes() {
  return localJobs("finetune", finetuneHandler);
}

export function localExperiments() {
  return localJobs("experiment", experimentHandler);
}

async function localJobs(kind: string, handler: (deps: FinetuneDeps) => JobHandler) {
  const gpu = await acquireGpu({ log: false });
  const database = await openDatabase({ dataDir: "memory://" });
  await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
  const work = await Deno.makeTempDir({ prefix: "splice-local-" });
  const events = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(new MemoryJobStore(), events, { pollMs: 50 });
  runner.register(
    kind,
    handler({
      database,
      gpu,
      dataDir: work,
      metrics: new MetricsWriter(database.db),
      createTrainer: createSaeTrainer,
    }),
  );
  runner.start();
  return {
    /** The jobs' data dir: a job's SAE is under saes/<job id>/ until close(). */
    dataDir: work,
    database,
    /** Runs one job; its id and result, or its error message. */
    async run(
      config: Record<string, unknown>,
      onMetrics?: (m: Record<string, number | string>) => void,
      onLog?: (message: string) => void,
    ): Promise<{ id: string } & ({ result: unknown } | { error: string })> {
      const job = await runner.submit(kind, config);
      let result: unknown = undefined, error = "";
      for await (const e of events.subscribe(job.id)) {
        if (e.type === "metrics") onMetrics?.(e.data as Record<string, number | string>);
        else if (e.type === "log") onLog?.((e.data as { message: string }).message);
        else if (e.type === "result") result = e.data;
        else if (e.type === "error") error = (e.data as { message: string }).message;
      }
      return result === undefined
        ? { id: job.id, error: error || "no result" }
        : { id: job.id, result };
    },
    async close() {
      await runner.stop();
      await database.close();
      await Deno.remove(work, { recursive: true });
    },
  };
}
