// POST /models as multipart: an uploaded ONNX LM is registered with its hook points; a file that is
// not an ONNX LM is a 400 and leaves nothing behind.
import { assertEquals, assertStringIncludes } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../db/job_store.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { createApp } from "../../routes/app.ts";
import { testGpu } from "../util/gpu.ts";

Deno.test("POST /models uploads an ONNX LM (multipart); junk is refused", async () => {
  const dataDir = await Deno.makeTempDir();
  const database = await openDatabase({ dataDir: "memory://" });
  const events = new EventHub(new DbEventStore(database.db));
  const app = createApp({
    config: Config.parse({ dataDir }),
    gpu: await testGpu(),
    database,
    runner: new JobRunner(new DbJobStore(database.db), events),
    events,
    startedAt: performance.now(),
  });
  try {
    const bytes = await Deno.readFile(
      new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url),
    );
    const form = new FormData();
    form.append("model", new Blob([bytes]), "tiny.onnx");
    form.append("name", "uploaded tiny");
    form.append("context_length", "128");
    const r = await app.request("/models", { method: "POST", body: form });
    assertEquals(r.status, 201, await r.clone().text());
    const m = await r.json();
    assertEquals(m.info.contextLength, 128);
    const hooks = (await (await app.request(`/models/${m.id}/hooks`)).json()).hooks;
    assertEquals(hooks.filter((h: { spec: string | null }) => h.spec).length, 4);

    const junk = new FormData();
    junk.append("model", new Blob([new Uint8Array([1, 2, 3])]), "junk.onnx");
    const bad = await app.request("/models", { method: "POST", body: junk });
    assertEquals(bad.status, 400);
    assertStringIncludes((await bad.json()).error.message, "not a usable ONNX LM");
    const noFile = new FormData();
    noFile.append("name", "x");
    assertEquals((await app.request("/models", { method: "POST", body: noFile })).status, 400);
    const left = [...Deno.readDirSync(`${dataDir}/models`)];
    assertEquals(left.length, 1, "only the good upload is kept");
  } finally {
    await database.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
