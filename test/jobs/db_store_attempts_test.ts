// The database counts a job's claims: a job whose process died on each of its attempts is failed
// with the reason on the next claim, on PGlite and on PostgreSQL alike.
import { assertEquals, assertStringIncludes } from "@std/assert";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { databaseKinds } from "../util/databases.ts";

for (const kind of databaseKinds) {
  Deno.test(`[${kind.name}] claims count attempts; past the bound the job is failed, not run`, async () => {
    const t = await kind.create();
    const d = await t.connect();
    try {
      const store = new DbJobStore(d.db);
      const hub = new EventHub(new DbEventStore(d.db));
      const job = await store.insert({ id: "j", kind: "oom", config: {} });
      for (let i = 1; i <= 2; i++) {
        const c = await store.claim(`dead-${i}`, 1, ["oom"]);
        assertEquals(c?.attempts, i);
        await new Promise((r) => setTimeout(r, 20));
      }
      const runner = new JobRunner(store, hub, { pollMs: 20, leaseMs: 2000, maxAttempts: 2 });
      let ran = false;
      runner.register("oom", () => {
        ran = true;
        return Promise.resolve();
      });
      runner.start();
      const seen = [];
      for await (const e of hub.subscribe(job.id)) seen.push(e);
      await runner.stop();
      assertEquals(ran, false);
      const rec = (await store.get(job.id))!;
      assertEquals([rec.state, rec.attempts], ["failed", 3]);
      assertStringIncludes(rec.error!, "started 2 times");
      assertEquals(seen.map((e) => e.type), ["error", "state"]);
    } finally {
      await d.close();
      await t.cleanup();
    }
  });
}
