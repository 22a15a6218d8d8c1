// Job handlers in-process (in-memory database with the embedded model, a job runner): for scripts
// that run many training jobs, evals or an experiment and read their results, without the HTTP
// service. The handlers are the service's own, so a script's numbers are what POST /finetunes,
// POST /evals and POST /experiments give.
import { openDatabase } from "../db/client.ts";
import { MetricsWriter } from "../db/metrics_writer.ts";
import { models } from "../db/schema.ts";
import { acquireGpu } from "../gpu/device.ts";
import { evalHandler } from "../jobs/eval_job.ts";
import { EventHub, MemoryEventStore } from "../jobs/events.ts";
import { experimentHandler } from "../jobs/experiment_job.ts";
import { type FinetuneDeps, finetuneHandler } from "../jobs/finetune_job.ts";
import { MemoryJobStore } from "../jobs/memory_store.ts";
import { type JobHandler, JobRunner } from "../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../main.ts";
import { createTrainer } from "../sae/sae_device.ts";

const HANDLERS = { finetune: finetuneHandler, eval: evalHandler, experiment: experimentHandler };
type JobKind = keyof typeof HANDLERS;
type Metrics = Record<string, number | string>;
type Outcome = { id: string } & ({ result: unknown } | { error: string });

export const localFinetunes = () => localJobsOf("finetune");
export const localExperiments = () => localJobsOf("experiment");

/** localJobs() whose run() takes one kind of job. */
async function localJobsOf(kind: JobKind) {
  const jobs = await localJobs();
  type Rest = Parameters<LocalJobs["run"]> extends [JobKind, ...infer R] ? R : never;
  return { ...jobs, run: (...args: Rest) => jobs.run(kind, ...args) };
}

/** A runner with the finetune, eval and experiment handlers, sharing one database and data dir. */
export async function localJobs() {
  const gpu = await acquireGpu({ log: false });
  const database = await openDatabase({ dataDir: "memory://" });
  await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
  const work = await Deno.makeTempDir({ prefix: "splice-local-" });
  const events = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(new MemoryJobStore(), events, { pollMs: 50 });
  const deps: FinetuneDeps = {
    database,
    gpu,
    dataDir: work,
    metrics: new MetricsWriter(database.db),
    createTrainer,
  };
  for (const [kind, handler] of Object.entries(HANDLERS)) {
    runner.register(kind, (handler as (deps: FinetuneDeps) => JobHandler)(deps));
  }
  runner.start();
  return {
    /** The jobs' data dir: a job's SAE is under saes/<job id>/ until close(). */
    dataDir: work,
    database,
    /** Runs one job; its id and result, or its error message. */
    async run(
      kind: JobKind,
      config: Record<string, unknown>,
      onMetrics?: (m: Metrics) => void,
      onLog?: (message: string) => void,
    ): Promise<Outcome> {
      const job = await runner.submit(kind, config);
      let result: unknown = undefined, error = "";
      for await (const e of events.subscribe(job.id)) {
        if (e.type === "metrics") onMetrics?.(e.data as Metrics);
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

export type LocalJobs = Awaited<ReturnType<typeof localJobs>>;

/**
 * Runs one job, printing a line per metrics event (`label`, phase, step and the fields named in
 * `fields`, each with its digits) and the wall time; throws with the job's error.
 */
export async function runLogged(
  jobs: LocalJobs,
  kind: JobKind,
  config: Record<string, unknown>,
  label: string,
  fields: Record<string, number> = { l0: 1, fvu: 3, deadFraction: 3 },
): Promise<{ id: string; result: Record<string, unknown> }> {
  const t0 = performance.now();
  const out = await jobs.run(kind, config, (m) => {
    const parts = Object.entries(fields).map(([name, digits]) =>
      `${name} ${typeof m[name] === "number" ? (m[name] as number).toFixed(digits) : "-"}`
    );
    console.error(`${label} ${m.phase} step ${m.step} ${parts.join(" ")}`);
  });
  if ("error" in out) throw new Error(`${label}: ${out.error}`);
  console.error(`${label}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return { id: out.id, result: out.result as Record<string, unknown> };
}
