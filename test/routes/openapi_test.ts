// /openapi.json against the app itself: every mounted route is in the document with its method
// and a response schema, every $ref resolves, and real responses parse with the zod schemas the
// document is generated from.
import { assert, assertEquals, assertMatch } from "@std/assert";
import type { Hono } from "hono";
import type { z } from "zod";
import { Config } from "../../config.ts";
import { type Database, openDatabase } from "../../db/client.ts";
import { experiments, metrics, models } from "../../db/schema.ts";
import { EventHub, MemoryEventStore } from "../../jobs/events.ts";
import { MemoryJobStore } from "../../jobs/memory_store.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { createApp } from "../../routes/app.ts";
import * as R from "../../routes/responses.ts";
import { testGpu } from "../util/gpu.ts";

let database: Database | null = null;

async function makeApp() {
  database ??= await openDatabase({ dataDir: "memory://" });
  const events = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(new MemoryJobStore(), events);
  const a = createApp({
    config: Config.parse({}),
    gpu: await testGpu(),
    database,
    events,
    runner,
    startedAt: performance.now(),
  });
  return { app: a as Hono, runner, db: database.db };
}

type Operation = { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> };
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** Routes of `app` (method and OpenAPI path) that the document leaves out or gives no 2xx schema. */
function undocumented(app: Hono, doc: Doc): string[] {
  const routes = new Set(
    app.routes
      // app.use("*", …) middleware is registered as ALL on a wildcard: not an endpoint.
      .filter((r) => !(r.method === "ALL" && r.path.endsWith("*")))
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}")}`),
  );
  return [...routes].filter((route) => {
    const [method, path] = route.split(" ");
    const op = doc.paths[path]?.[method.toLowerCase()];
    const ok = Object.entries(op?.responses ?? {}).filter(([status]) => /^2\d\d$/.test(status));
    return !ok.length ||
      !ok.every(([, r]) => Object.values(r.content ?? {}).some((m) => m.schema !== undefined));
  });
}

async function documentOf(app: Hono): Promise<Doc> {
  const res = await app.request("/openapi.json");
  assertEquals(res.status, 200);
  assertMatch(res.headers.get("content-type") ?? "", /application\/json/);
  return JSON.parse(await res.text());
}

Deno.test("openapi: every registered route is documented with a response schema", async () => {
  const { app } = await makeApp();
  const doc = await documentOf(app);
  assertMatch(doc.openapi, /^3\.\d+\.\d+$/);
  assertEquals(undocumented(app, doc), []);
  // The routes the hand-written table had lost.
  assert(doc.paths["/models/{id}"]?.get);
  assert(doc.paths["/datasets/{id}"]?.get);
  // Event streams are documented as such.
  const streams = Object.keys(doc.paths).filter((p) => p.endsWith("/events"));
  assertEquals(streams.length, 3);
  for (const p of streams) {
    assert(doc.paths[p].get.responses?.["200"].content?.["text/event-stream"]);
  }
  // Every reference points into the document.
  const schemas = (doc as unknown as { components: { schemas: Record<string, unknown> } })
    .components.schemas;
  const refs = JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g);
  for (const [, name] of refs) assert(name in schemas, `dangling $ref ${name}`);
});

Deno.test("openapi: a route added without a description is reported", async () => {
  const { app } = await makeApp();
  app.get("/undocumented/:thing", (c) => c.text("x"));
  app.post("/models/:id/rename", (c) => c.text("x"));
  const doc = await documentOf(app);
  assertEquals(undocumented(app, doc), [
    "GET /undocumented/{thing}",
    "POST /models/{id}/rename",
  ]);
});

async function parsed<T extends z.ZodType>(
  app: Hono,
  path: string,
  schema: T,
  { status = 200, method = "GET" } = {},
) {
  const res = await app.request(path, { method });
  const body = await res.json();
  assertEquals(res.status, status, JSON.stringify(body));
  const r = schema.safeParse(body);
  assert(r.success, `${path}: ${r.error?.message}\n${JSON.stringify(body)}`);
  return r.data as z.infer<T>;
}

Deno.test("openapi: responses parse with the schemas the document is made from", async () => {
  const { app, runner, db } = await makeApp();
  const id = crypto.randomUUID();
  await db.insert(models).values({
    id,
    name: "m",
    path: `/nonexistent/${id}.onnx`,
    info: { hooks: 3, contextLength: 64, signature: ["input_ids"] },
  });
  const ft = await runner.store.insert({ id: crypto.randomUUID(), kind: "finetune", config: {} });
  await db.insert(metrics).values({ jobId: ft.id, step: 1, tokens: 64, values: { loss: 1.5 } });
  const ev = await runner.store.insert({ id: crypto.randomUUID(), kind: "eval", config: {} });
  const ex = crypto.randomUUID();
  await db.insert(experiments).values({
    id: ex,
    name: "x",
    jobId: null,
    config: {},
    result: {
      table: [{ arm: "mse", ceGap: 0.1, ceGapReduction: null }],
      arms: [{
        name: "mse",
        type: "mse",
        final: { ceGap: 0.1, l0: 8 },
        curve: [[0, 0.2], [64, 0.1]],
        stability: { encoder: [], decoder: [] },
      }],
      plots: { final_ce_gap: "<svg/>" },
    },
  });

  await parsed(app, "/health", R.Health);
  assert((await parsed(app, "/models", R.ModelList)).models.some((m) => m.id === id));
  await parsed(app, `/models/${id}`, R.Model);
  assertEquals((await parsed(app, "/datasets", R.DatasetList)).datasets[0].id, "brown");
  await parsed(app, "/datasets/brown", R.Dataset);
  await parsed(app, "/saes", R.SaeList);
  assertEquals((await parsed(app, "/finetunes", R.FinetuneList)).finetunes.length, 1);
  await parsed(app, `/finetunes/${ft.id}`, R.Finetune);
  assertEquals((await parsed(app, `/finetunes/${ft.id}/metrics`, R.Metrics)).metrics.length, 1);
  await parsed(app, "/evals", R.EvalList);
  await parsed(app, `/evals/${ev.id}`, R.Eval);
  assertEquals((await parsed(app, "/experiments", R.ExperimentList)).experiments[0].id, ex);
  const x = await parsed(app, `/experiments/${ex}`, R.Experiment);
  assertEquals(x.links.plots, [`/experiments/${ex}/plots/final_ce_gap.svg`]);
  assertEquals(
    (await parsed(app, `/models/${id}`, R.Deleted, { method: "DELETE" })).deleted,
    id,
  );
  const missing = await parsed(app, `/models/${id}`, R.ErrorBody, { status: 404 });
  assertEquals(missing.error.code, "not_found");
  const bad = await app.request("/finetunes", { method: "POST", body: '{"lr": -1}' });
  assertEquals(bad.status, 400);
  const badBody = R.ErrorBody.parse(await bad.json());
  assert(Array.isArray(badBody.error.details));
});
