// The app in-process: error shapes, validation, auth, body limit.
import { assert, assertEquals } from "@std/assert";
import { Hono } from "hono";
import { z } from "zod";
import { Config, ConfigError, loadConfig } from "../../config.ts";
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
  database = null;
});

Deno.test("app: with a token, the page, /ui, /openapi.json and /docs need it too; 401 is the error shape", async () => {
  const token = "a token # with spaces";
  const a = await app({ token });
  for (const path of ["/", "/ui/app.js", "/ui/app.css", "/openapi.json", "/docs", "/models"]) {
    const r = await a.request(path);
    assertEquals(r.status, 401, path);
    assertEquals(r.headers.get("WWW-Authenticate")?.startsWith("Bearer"), true, path);
    const body = await r.json();
    assertEquals(body.error.code, "unauthorized", path);
    assert(body.error.message.length > 0 && "details" in body.error, path);
  }
  const auth = { Authorization: `Bearer ${token}` };
  for (const path of ["/", "/ui/app.js", "/openapi.json", "/docs", "/models"]) {
    assertEquals((await a.request(path, { headers: auth })).status, 200, path);
  }
  // The modules the page imports (web/app.js) come from lib/, as JavaScript; nothing else there.
  const js = ["/ui/sse.js", "/ui/palette.js", "/ui/eval_cells.js"];
  for (const path of js) {
    const r = await a.request(path, { headers: auth });
    assertEquals([r.status, r.headers.get("content-type")?.split(";")[0]], [
      200,
      "text/javascript",
    ]);
    assert((await r.text()).includes("export "), path);
  }
  const imported = [...(await (await a.request("/ui/app.js", { headers: auth })).text())
    .matchAll(/^import .* from "\.\/([a-z_]+\.js)";$/gm)].map((m) => `/ui/${m[1]}`);
  assertEquals(imported.sort(), js.sort());
  assertEquals((await a.request("/ui/rng.ts", { headers: auth })).status, 404);
  // A wrong token (with spaces and "#" too) is refused and never echoed.
  const wrong = await a.request("/models", {
    headers: { Authorization: "Bearer a token # zzqq-bad" },
  });
  assertEquals(wrong.status, 401);
  assert(!(await wrong.text()).includes("zzqq"), "the rejected token is not echoed");
  assertEquals(
    (await a.request("/models", { headers: { Authorization: `Basic ${btoa(token)}` } })).status,
    401,
  );

  // The page: /?token= once sets an HttpOnly cookie that later requests (its script, SSE) carry.
  const page = await a.request(`/?token=${encodeURIComponent(token)}`);
  assertEquals(page.status, 200);
  const setCookie = page.headers.get("set-cookie") ?? "";
  assert(/HttpOnly/i.test(setCookie) && /SameSite=Strict/i.test(setCookie), setCookie);
  const cookie = setCookie.split(";")[0];
  assertEquals((await a.request("/ui/app.js", { headers: { cookie } })).status, 200);
  assertEquals((await a.request("/models", { headers: { cookie } })).status, 200);
  assertEquals((await a.request(`/?token=nope-nope-nope`)).status, 401);
  // The query token is for the page only, not for API routes.
  assertEquals((await a.request(`/models?token=${encodeURIComponent(token)}`)).status, 401);
  assertEquals((await a.request("/health")).status, 200);
  await database?.close();
  database = null;
});

Deno.test("config: tokens of printable ASCII; a rejected token is never echoed", () => {
  assertEquals(loadConfig([], { SPLICE_TOKEN: "spaces and # ok" }).token, "spaces and # ok");
  for (const bad of ["short", " leading-space", "trailing-space ", "tab\there-x", "über-token"]) {
    let msg = "";
    try {
      loadConfig([], { SPLICE_TOKEN: bad });
    } catch (e) {
      assert(e instanceof ConfigError);
      msg = e.message;
    }
    assert(msg.includes("SPLICE_TOKEN"), `${JSON.stringify(bad)}: ${msg}`);
    assert(!msg.includes(bad.trim()), `the token is echoed: ${msg}`);
  }
});
