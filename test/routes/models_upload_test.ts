// POST /models as multipart: an uploaded ONNX LM is registered with its hook points; a file that is
// not an ONNX LM is a 400 and leaves nothing behind.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { createApp } from "../../routes/app.ts";
import { testGpu } from "../util/gpu.ts";
import { freePort, spawnService, waitHealthy } from "../../scripts/_client.ts";

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

/** A multipart body of `mib` MiB (a "model" file part of zeros), generated as it is sent. */
function streamedUpload(mib: number): { body: ReadableStream<Uint8Array>; type: string } {
  const boundary = "b0undary";
  const enc = new TextEncoder();
  const chunk = new Uint8Array(1 << 20);
  let sent = -1;
  return {
    type: `multipart/form-data; boundary=${boundary}`,
    body: new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent < 0) {
          c.enqueue(enc.encode(
            `--${boundary}\r\nContent-Disposition: form-data; name="model"; filename="m.onnx"` +
              `\r\n\r\n`,
          ));
        } else if (sent < mib) c.enqueue(chunk);
        else {
          c.enqueue(enc.encode(`\r\n--${boundary}--\r\n`));
          c.close();
        }
        sent++;
      },
    }),
  };
}

Deno.test({
  name: "model uploads stream to disk: bounded memory, 429 past the cap, 413 while arriving",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The service runs as its own process, so that its resident memory is measured alone (tests
    // running in parallel share this one).
    const dataDir = await Deno.makeTempDir();
    const port = freePort();
    const proc = spawnService(port, dataDir, { SPLICE_MAX_BODY_BYTES: String(64 * 2 ** 20) });
    const base = `http://127.0.0.1:${port}`;
    const url = `${base}/models`;
    const send = (mib: number) => {
      const u = streamedUpload(mib);
      return fetch(url, { method: "POST", body: u.body, headers: { "Content-Type": u.type } });
    };
    const rss = async () => {
      const status = await Deno.readTextFile(`/proc/${proc.pid}/status`);
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    };
    try {
      await waitHealthy(base);
      // Six 48 MiB uploads at once: two run (and fail: zeros are no ONNX model), four are 429.
      const rss0 = await rss();
      let peak = rss0;
      const sampler = setInterval(async () => peak = Math.max(peak, await rss()), 20);
      const rs = await Promise.all(Array.from({ length: 6 }, () => send(48)));
      clearInterval(sampler);
      const statuses = await Promise.all(rs.map(async (r) => {
        const body = await r.json();
        assertEquals(typeof body.error.code, "string");
        return r.status;
      }));
      statuses.sort();
      assertEquals(statuses.filter((s) => s === 429).length, 4, `${statuses}`);
      assertEquals(statuses.filter((s) => s === 400).length, 2, `${statuses}`);
      const grown = peak - rss0;
      console.log(
        `6 × 48 MiB uploads: the service's RSS peak +${(grown / 2 ** 20).toFixed(0)} MiB`,
      );
      // Two accepted uploads are each read back once to be decoded; nothing else is held.
      assert(grown < 2 * 48 * 2 ** 20 + 200 * 2 ** 20, `RSS grew by ${grown} bytes`);

      const big = await send(80);
      assertEquals(big.status, 413);
      assertEquals((await big.json()).error.code, "payload_too_large");
      const left = [...Deno.readDirSync(`${dataDir}/models`)].filter((e) =>
        !e.name.startsWith(".")
      );
      assertEquals(left.length, 0, "no leftovers");
    } finally {
      proc.kill("SIGTERM");
      await proc.status;
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
