// The app in-process: error shapes, validation, auth, body limit.
import { assert, assertEquals } from "@std/assert";
import { Hono } from "hono";
import { z } from "zod";
import { Config } from "../../config.ts";
import { type Database, openDatabase } from "../../db/client.ts";
import { EventHub, MemoryEventStore } from "../../jobs/events.ts";
import { MemoryJobStore } from "../../jobs/memory_store.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { createApp } from "../../routes/app.ts";
import { jsonBody } from "../../routes/validate.ts";
import { testGpu } from "../util/gpu.ts";

let database: Database | null = null;

async function app(config: Partial<z.input<typeof Config>> = {}) {
  database ??= await openDatabase({ dataDir: "memory://" });
  const events = new EventHub(new MemoryEventStore());
  const a = createApp({
    config: Config.parse(config),
    gpu: await testGpu(),
    database,
    events,
    runner: new JobRunner(new MemoryJobStore(), events),
    startedAt: performance.now(),
  });
  // A route with a body schema, as later routes will have.
  const Body = z.object({ kind: z.enum(["a", "b"]), n: z.number().int().min(1) });
  a.post("/echo", async (c) => c.json(await jsonBody(c, Body)));
  return a as Hono;
}

Deno.test("app: health, 404 shape, validation with field paths, bad JSON", async () => {
  const a = await app();
  const h = await (await a.request("/health")).json();
  assert(h.gpu.adapter.length > 0);
  const nf = await a.request("/nope");
  assertEquals(nf.status, 404);
  assertEquals((await nf.json()).error.code, "not_found");
  const bad = await a.request("/echo", {
    method: "POST",
    body: JSON.stringify({ kind: "c", n: 0 }),
  });
  assertEquals(bad.status, 400);
  const body = await bad.json();
  assertEquals(body.error.code, "invalid_request");
  assertEquals(body.error.details.map((d: { path: string }) => d.path).sort(), ["kind", "n"]);
  const junk = await a.request("/echo", { method: "POST", body: "{not json" });
  assertEquals(junk.status, 400);
  assertEquals((await junk.json()).error.code, "invalid_json");
  const ok = await a.request("/echo", {
    method: "POST",
    body: JSON.stringify({ kind: "a", n: 2 }),
  });
  assertEquals(await ok.json(), { kind: "a", n: 2 });
});

Deno.test("app: bearer token guards everything but /health", async () => {
  const a = await app({ token: "s3cret-token" });
  assertEquals((await a.request("/health")).status, 200);
  const none = await a.request("/models");
  assertEquals(none.status, 401);
  assertEquals((await none.json()).error.code, "unauthorized");
  assertEquals(
    (await a.request("/models", { headers: { Authorization: "Bearer wrong-token" } })).status,
    401,
  );
  assertEquals(
    (await a.request("/models", { headers: { Authorization: "Bearer s3cret-token" } })).status,
    200,
  );
});

Deno.test("app: an oversize body is 413 with the error shape", async () => {
  const a = await app({ maxBodyBytes: 2048 });
  const r = await a.request("/echo", {
    method: "POST",
    body: JSON.stringify({ kind: "a", n: 1, pad: "x".repeat(5000) }),
    headers: { "Content-Length": "5030" },
  });
  assertEquals(r.status, 413);
  assertEquals((await r.json()).error.code, "payload_too_large");
});

Deno.test("app: a lost device is reported by /health, which keeps serving", async () => {
  const gpu = await testGpu();
  const a = await app();
  gpu.device.destroy();
  await new Promise((r) => setTimeout(r, 50));
  const h = await (await a.request("/health")).json();
  assertEquals(h.status, "degraded");
  assert(String(h.gpu.lost).startsWith("destroyed"));
  let msg = "";
  try {
    gpu.assertAlive();
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("was lost"), msg);
  await database?.close();
});
