// splice: reads config, opens the database, acquires the GPU, registers the embedded model, serves.
// SIGINT/SIGTERM stop accepting requests, pause running jobs (they resume on the next start) and
// close the database.
import { eq } from "drizzle-orm";
import { ConfigError, loadConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { DbEventStore, DbJobStore } from "./jobs/db_store.ts";
import { models } from "./db/schema.ts";
import { acquireGpu, GpuUnavailableError } from "./gpu/device.ts";
import { EventHub } from "./jobs/events.ts";
import { JobRunner } from "./jobs/runner.ts";
import { finetuneHandler } from "./jobs/finetune_job.ts";
import { evalHandler } from "./jobs/eval_job.ts";
import { MetricsWriter } from "./db/metrics_writer.ts";
import { createTrainer } from "./sae/sae_device.ts";
import { experimentHandler } from "./jobs/experiment_job.ts";
import { createApp } from "./routes/app.ts";
import type { Db } from "./db/client.ts";

export const EMBEDDED_MODEL = {
  id: "tiny-neox",
  name: "tiny-neox (Pythia architecture, Brown corpus, byte tokens)",
  path: new URL("./fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
  info: { contextLength: 128, vocab: 256, tokenizer: "bytes" },
};

async function registerEmbedded(db: Db): Promise<void> {
  const [have] = await db.select().from(models).where(eq(models.id, EMBEDDED_MODEL.id));
  if (have?.path === EMBEDDED_MODEL.path && have.info) return;
  await db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true })
    .onConflictDoUpdate({
      target: models.id,
      set: { path: EMBEDDED_MODEL.path, info: EMBEDDED_MODEL.info },
    });
}

function fatal(msg: string, code: number): never {
  console.error(`splice: ${msg}`);
  Deno.exit(code);
}

async function main() {
  let config;
  try {
    config = loadConfig(Deno.args, Deno.env.toObject());
  } catch (e) {
    if (e instanceof ConfigError) fatal(e.message, 2);
    throw e;
  }
  let gpu;
  try {
    gpu = await acquireGpu();
  } catch (e) {
    if (e instanceof GpuUnavailableError) fatal(e.message, 3);
    throw e;
  }
  let database;
  try {
    database = await openDatabase({ dataDir: `${config.dataDir}/pg`, url: config.databaseUrl });
  } catch (e) {
    fatal(`${(e as Error).message}. Check DATABASE_URL or --data-dir.`, 4);
  }
  await registerEmbedded(database.db);
  const events = new EventHub(new DbEventStore(database.db));
  const runner = new JobRunner(new DbJobStore(database.db), events, { leaseMs: config.leaseMs });
  const metrics = new MetricsWriter(database.db);
  const jobDeps = {
    database,
    gpu,
    dataDir: config.dataDir,
    metrics,
    createTrainer,
  };
  runner.register("finetune", finetuneHandler(jobDeps));
  runner.register("eval", evalHandler(jobDeps));
  runner.register("experiment", experimentHandler(jobDeps));
  const app = createApp({ config, gpu, database, runner, events, startedAt: performance.now() });
  runner.start();
  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) =>
      console.error(`splice: listening on http://${hostname}:${port} (database: ${database.kind})`),
  }, app.fetch);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`splice: ${signal}: shutting down`);
    await runner.stop();
    await metrics.flush();
    await server.shutdown();
    await database.close();
    gpu.device.destroy();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
}

if (import.meta.main) await main();
