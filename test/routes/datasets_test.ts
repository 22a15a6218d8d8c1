// /datasets: register JSONL, text and token files by path under SPLICE_ROOTS; bad files and paths
// outside the roots are refused with a message and leave nothing behind; a registered data set
// serves train and validation batches to jobs.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { EventHub } from "../../jobs/events.ts";
import { loadDataset } from "../../jobs/datasets.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { createApp } from "../../routes/app.ts";
import { testGpu } from "../util/gpu.ts";

Deno.test({
  name: "POST /datasets registers text, JSONL and token files; bad ones are 4xx",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.realPath(await Deno.makeTempDir());
    const outside = await Deno.makeTempDir();
    const database = await openDatabase({ dataDir: "memory://" });
    const events = new EventHub(new DbEventStore(database.db));
    const app = createApp({
      config: Config.parse({ dataDir: root, roots: [root] }),
      gpu: await testGpu(),
      database,
      runner: new JobRunner(new DbJobStore(database.db), events),
      events,
      startedAt: performance.now(),
    });
    const post = (body: unknown) =>
      app.request("/datasets", { method: "POST", body: JSON.stringify(body) });
    try {
      const docs = Array.from(
        { length: 40 },
        (_, i) => `document ${i}: ${"lorem ipsum ".repeat(8)}`,
      );
      await Deno.writeTextFile(
        `${root}/a.jsonl`,
        docs.map((t) => JSON.stringify({ body: t })).join("\n"),
      );
      await Deno.writeTextFile(`${root}/b.txt`, docs.join("\n\n"));
      await Deno.writeFile(
        `${root}/c.u16`,
        new Uint8Array(Uint16Array.from({ length: 4000 }, (_, i) => i % 256).buffer),
      );
      await Deno.writeTextFile(`${root}/bad.jsonl`, "{not json\n");
      await Deno.writeFile(`${root}/odd.u16`, new Uint8Array(3));
      await Deno.writeTextFile(`${outside}/x.txt`, "hello");

      const ids: string[] = [];
      for (
        const body of [
          { name: "a", path: `${root}/a.jsonl`, format: "jsonl", field: "body" },
          { name: "b", path: `${root}/b.txt`, format: "text" },
          { name: "c", path: `${root}/c.u16`, format: "tokens", token_width: 16 },
        ]
      ) {
        const r = await post(body);
        assertEquals(r.status, 201, await r.clone().text());
        ids.push((await r.json()).id);
      }
      const list = (await (await app.request("/datasets")).json()).datasets;
      assertEquals(list.map((d: { id: string }) => d.id), ["brown", ...ids]);
      for (const id of ids) {
        const ds = await loadDataset(database, id);
        const batch = ds.batches("train", 2, 16, 0).next();
        assertEquals(batch.length, 32);
        assert(batch.every((t) => t >= 0n && t < 256n), "byte-range ids");
        assertEquals(ds.batches("validation", 1, 16, 0, false).next().length, 16);
      }

      const bad = await post({ name: "bad", path: `${root}/bad.jsonl`, format: "jsonl" });
      assertEquals(bad.status, 400);
      assertStringIncludes((await bad.json()).error.message, "not JSON");
      const odd = await post({ name: "odd", path: `${root}/odd.u16`, format: "tokens" });
      assertEquals(odd.status, 400);
      // Outside the roots, an existing and a missing file get the same status and message.
      const existing = await post({ name: "x", path: `${outside}/x.txt`, format: "text" });
      assertEquals(existing.status, 400);
      await Deno.remove(`${outside}/x.txt`).catch(() => {});
      const gone = await post({ name: "x", path: `${outside}/x.txt`, format: "text" });
      assertEquals(gone.status, 400);
      assertEquals(
        (await gone.json()).error.message,
        (await existing.json()).error.message,
      );
      const missing = await post({ name: "m", path: `${root}/none.txt`, format: "text" });
      assert(missing.status >= 400 && missing.status < 500);
      assertEquals(
        (await (await app.request("/datasets")).json()).datasets.length,
        4,
        "no leftovers",
      );
      assertEquals((await app.request("/datasets/nope")).status, 404);
    } finally {
      await database.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(outside, { recursive: true });
    }
  },
});
