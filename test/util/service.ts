// The service in-process for route tests: an in-memory database with the embedded model, a job
// runner with the handlers a test asks for, the app on a loopback port. close() undoes it all.
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { MetricsWriter } from "../../db/metrics_writer.ts";
import { models } from "../../db/schema.ts";
import { evalHandler } from "../../jobs/eval_job.ts";
import { EventHub } from "../../jobs/events.ts";
import { experimentHandler } from "../../jobs/experiment_job.ts";
import { finetuneHandler, type TrainerFactory } from "../../jobs/finetune_job.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../../main.ts";
import { createApp } from "../../routes/app.ts";
import { createTrainer as serviceTrainer } from "../../sae/sae_device.ts";
import { assertEquals } from "@std/assert";
import { testGpu } from "./gpu.ts";
import { readSse } from "./sse.ts";

export interface TestServiceOptions {
  /** Job kinds to run: finetune, eval, experiment. */
  jobs?: ("finetune" | "eval" | "experiment")[];
  createTrainer?: TrainerFactory;
  config?: Partial<Config>;
  /** Start the runner (default true). */
  start?: boolean;
}

export async function startTestService(o: TestServiceOptions = {}) {
  const dataDir = await Deno.makeTempDir();
  const database = await openDatabase({ dataDir: "memory://" });
  await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
  const gpu = await testGpu();
  const events = new EventHub(new DbEventStore(database.db));
  const runner = new JobRunner(new DbJobStore(database.db), events, { pollMs: 50 });
  const metrics = new MetricsWriter(database.db);
  const createTrainer = o.createTrainer ?? serviceTrainer;
  for (const kind of o.jobs ?? []) {
    runner.register(
      kind,
      kind === "finetune"
        ? finetuneHandler({ database, gpu, dataDir, metrics, createTrainer })
        : kind === "eval"
        ? evalHandler({ database, gpu, dataDir, createTrainer })
        : experimentHandler({ database, gpu, dataDir, metrics }),
    );
  }
  const app = createApp({
    config: Config.parse({ dataDir, ...o.config }),
    gpu,
    database,
    runner,
    events,
    startedAt: performance.now(),
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  if (o.start ?? true) runner.start();
  /** Submits one job and follows it to the end: its result (null if none), metrics rows, errors. */
  async function runJob<R = unknown, M = Record<string, number>>(
    kind: string,
    config: Record<string, unknown>,
  ): Promise<{ id: string; result: R | null; metrics: M[]; errors: unknown[] }> {
    const job = await runner.submit(kind, config);
    let result: R | null = null;
    const metrics: M[] = [], errors: unknown[] = [];
    for await (const e of events.subscribe(job.id)) {
      if (e.type === "metrics") metrics.push(e.data as M);
      else if (e.type === "result") result = e.data as R;
      else if (e.type === "error") errors.push(e.data);
    }
    return { id: job.id, result, metrics, errors };
  }
  const url = `http://127.0.0.1:${server.addr.port}`;
  /** POSTs a JSON body to the service. */
  const post = (path: string, body: unknown) =>
    fetch(`${url}${path}`, { method: "POST", body: JSON.stringify(body) });
  /** A 202 job response followed over SSE to its end: the job as returned and every event. */
  async function follow(res: Response) {
    assertEquals(res.status, 202, await res.clone().text());
    const job = await res.json();
    const evs = await readSse(await fetch(`${url}${job.links.events}`));
    return { job, evs };
  }
  return {
    url,
    post,
    follow,
    runJob,
    app,
    dataDir,
    database,
    runner,
    events,
    gpu,
    close: async () => {
      await runner.stop();
      await server.shutdown();
      await database.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}
