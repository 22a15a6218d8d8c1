// Event ids come from the database: two processes (two hubs on two connections) publishing to one
// job never hand out the same id, which is what lets one process take over another's job.
import { assertEquals } from "@std/assert";
import { DbEventStore } from "../../jobs/db_store.ts";
import { EventHub } from "../../jobs/events.ts";
import { databaseKinds } from "../util/databases.ts";

for (const kind of databaseKinds) {
  Deno.test(`[${kind.name}] a hub that published before another continues after its ids`, async () => {
    const t = await kind.create();
    const [a, b] = [await t.connect(), await t.connect()];
    try {
      const x = new EventHub(new DbEventStore(a.db)), y = new EventHub(new DbEventStore(b.db));
      // X accepts the job (id 1), Y runs it for a while, then X takes it over.
      await x.publish("j", "state", { state: "queued" });
      for (let i = 0; i < 3; i++) await y.publish("j", "progress", { step: i });
      const took = await x.publish("j", "state", { state: "running" });
      assertEquals(took.id, 5);
      const all = await new DbEventStore(a.db).after("j", 0);
      assertEquals(all.map((e) => e.id), [1, 2, 3, 4, 5]);
      assertEquals(all.map((e) => e.type), ["state", "progress", "progress", "progress", "state"]);
    } finally {
      await a.close();
      await b.close();
      await t.cleanup();
    }
  });

  Deno.test(`[${kind.name}] concurrent publishers on two connections get dense, distinct ids`, async () => {
    const t = await kind.create();
    const [a, b] = [await t.connect(), await t.connect()];
    try {
      const x = new EventHub(new DbEventStore(a.db)), y = new EventHub(new DbEventStore(b.db));
      const n = 25;
      const published = await Promise.all([
        ...Array.from({ length: n }, (_, i) => x.publish("j", "log", { from: "x", i })),
        ...Array.from({ length: n }, (_, i) => y.publish("j", "log", { from: "y", i })),
      ]);
      assertEquals(
        published.map((e) => e.id).sort((p, q) => p - q),
        Array.from({ length: 2 * n }, (_, i) => i + 1),
      );
      // Each hub's own events reach the table in the order it published them.
      const stored = await new DbEventStore(a.db).after("j", 0);
      for (const from of ["x", "y"]) {
        const mine = stored.filter((e) => (e.data as { from: string }).from === from);
        assertEquals(mine.map((e) => (e.data as { i: number }).i), [...Array(n).keys()]);
      }
    } finally {
      await a.close();
      await b.close();
      await t.cleanup();
    }
  });
}
