// The database job store (claims, leases, the runner on it), batched metrics and reopening a data
// directory. Runs against PGlite always, and against PostgreSQL too when SPLICE_TEST_DATABASE_URL
// is set (.ci/run starts a server on loopback and sets it).
import { assert, assertEquals } from "@std/assert";
import { eq } from "drizzle-orm";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { MetricsWriter } from "../../db/metrics_writer.ts";
import { jobs, metrics, models } from "../../db/schema.ts";
import { databaseKinds } from "../util/databases.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";

/** A fresh, empty database of each kind (its own database on PostgreSQL), as one connection. */
const kinds = databaseKinds.map((k) => ({
  name: k.name,
  open: async () => {
    const t = await k.create();
    return { ...(await t.connect()), cleanup: () => t.cleanup() };
  },
}));

for (const kind of kinds) {
  Deno.test(`[${kind.name}] migrations apply; jobs claim once, lease, and resume after lease expiry`, async () => {
    const d = await kind.open();
    try {
      const store = new DbJobStore(d.db);
      await store.insert({ id: "a", kind: "k", config: { n: 1 } });
      await new Promise((r) => setTimeout(r, 5));
      await store.insert({ id: "b", kind: "k", config: { n: 2 } });
      // Two claimers at once never take the same job.
      const [x, y] = await Promise.all([
        store.claim("p1", 60_000, ["k"]),
        store.claim("p2", 60_000, ["k"]),
      ]);
      assertEquals(new Set([x!.id, y!.id]), new Set(["a", "b"]));
      assertEquals(await store.claim("p3", 60_000, ["k"]), null);
      assert(await store.heartbeat(x!.id, x!.leaseOwner!, 60_000));
      assertEquals(await store.heartbeat(x!.id, "someone-else", 60_000), false);
      // A lapsed lease (dead process) makes the job claimable again, with its checkpoint.
      await store.update("a", { leaseExpires: new Date(Date.now() - 1000), checkpoint: "/ckpt/a" });
      const again = await store.claim("p4", 60_000, ["k"]);
      assertEquals([again!.id, again!.checkpoint, again!.leaseOwner], ["a", "/ckpt/a", "p4"]);
      assertEquals((await store.list()).length, 2);
    } finally {
      await d.close();
      await d.cleanup();
    }
  });

  Deno.test(`[${kind.name}] the job runner works on the database: events persist and replay`, async () => {
    const d = await kind.open();
    try {
      const hub = new EventHub(new DbEventStore(d.db));
      const runner = new JobRunner(new DbJobStore(d.db), hub, { pollMs: 20, leaseMs: 2000 });
      runner.register("double", async (ctx) => {
        await ctx.emit("progress", { done: 1, total: 1 });
        return { out: (ctx.job.config as { x: number }).x * 2 };
      });
      runner.start();
      const job = await runner.submit("double", { x: 21 });
      const seen = [];
      for await (const e of hub.subscribe(job.id)) seen.push(e);
      await runner.stop();
      assertEquals(seen.map((e) => e.type), ["state", "state", "progress", "result", "state"]);
      assertEquals(seen.map((e) => e.id), [1, 2, 3, 4, 5]);
      // A new hub (a restarted process) replays the same history from the database.
      const replay = [];
      for await (const e of new EventHub(new DbEventStore(d.db)).subscribe(job.id, 2)) {
        replay.push(e);
      }
      assertEquals(replay.map((e) => e.id), [3, 4, 5]);
      const [row] = await d.db.select().from(jobs).where(eq(jobs.id, job.id));
      assertEquals([row.state, row.result], ["succeeded", { out: 42 }]);
    } finally {
      await d.close();
      await d.cleanup();
    }
  });

  Deno.test(`[${kind.name}] batched metrics: nothing flushed is lost`, async () => {
    const d = await kind.open();
    try {
      const w = new MetricsWriter(d.db, 4, 60_000);
      for (let s = 0; s < 10; s++) w.add({ jobId: "j", step: s, values: { mse: s / 10 } });
      await w.flush();
      const rows = await d.db.select().from(metrics).where(eq(metrics.jobId, "j"));
      assertEquals(rows.length, 10);
      assertEquals(rows.find((r) => r.step === 7)!.values, { mse: 0.7 });
    } finally {
      await d.close();
      await d.cleanup();
    }
  });
}

Deno.test("[pglite] data written before close is there after reopening (restart)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = await openDatabase({ dataDir: dir });
    await a.db.insert(models).values({ id: "m1", name: "tiny", path: "/x.onnx" });
    await a.close();
    const b = await openDatabase({ dataDir: dir });
    const rows = await b.db.select().from(models);
    await b.close();
    assertEquals(rows.map((r) => r.id), ["m1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
