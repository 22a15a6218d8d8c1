import { assertEquals } from "@std/assert";
import { EventHub, type JobEvent, MemoryEventStore } from "../../jobs/events.ts";

async function collect(it: AsyncGenerator<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

Deno.test("event ids increase per job and history replays after Last-Event-ID", async () => {
  const hub = new EventHub(new MemoryEventStore());
  await hub.publish("a", "state", { state: "running" });
  await hub.publish("b", "log", { line: "other job" });
  await hub.publish("a", "metrics", { step: 1 });
  await hub.publish("a", "state", { state: "succeeded" });
  const all = await collect(hub.subscribe("a"));
  assertEquals(all.map((e) => e.id), [1, 2, 3]);
  const tail = await collect(hub.subscribe("a", 1));
  assertEquals(tail.map((e) => e.type), ["metrics", "state"]);
});

Deno.test("a new hub continues ids from the store (restart)", async () => {
  const store = new MemoryEventStore();
  await new EventHub(store).publish("a", "log", {});
  const e = await new EventHub(store).publish("a", "log", {});
  assertEquals(e.id, 2);
});

Deno.test("many live subscribers each get every event, no gaps, no duplicates", async () => {
  const hub = new EventHub(new MemoryEventStore());
  await hub.publish("j", "state", { state: "running" });
  const subs = Array.from({ length: 50 }, () => collect(hub.subscribe("j")));
  const publishing = (async () => {
    for (let i = 0; i < 20; i++) await hub.publish("j", "metrics", { step: i });
    await hub.publish("j", "state", { state: "succeeded" });
  })();
  // Publish without awaiting each call too: ids must still be ordered.
  await publishing;
  for (const got of await Promise.all(subs)) {
    assertEquals(got.map((e) => e.id), Array.from({ length: 22 }, (_, i) => i + 1));
  }
  assertEquals(hub.subscriberCount("j"), 0);
});

Deno.test("unawaited publishes keep their order; abort ends a subscription", async () => {
  const hub = new EventHub(new MemoryEventStore());
  const ps = Array.from({ length: 10 }, (_, i) => hub.publish("k", "log", { i }));
  const ids = (await Promise.all(ps)).map((e) => e.id);
  assertEquals(ids, Array.from({ length: 10 }, (_, i) => i + 1));
  const ctl = new AbortController();
  const it = hub.subscribe("k", 10, ctl.signal);
  const first = it.next();
  await hub.publish("k", "log", { i: 10 });
  assertEquals((await first).value?.id, 11);
  const second = it.next();
  ctl.abort();
  assertEquals((await second).done, true);
});

Deno.test("a subscriber sees events another process's hub writes to the shared store", async () => {
  const store = new MemoryEventStore();
  const here = new EventHub(store, 20), there = new EventHub(store, 20);
  const got: number[] = [];
  const reading = (async () => {
    for await (const e of here.subscribe("j")) got.push(e.id);
  })();
  await there.publish("j", "log", { message: "a" });
  await new Promise((r) => setTimeout(r, 50));
  await there.publish("j", "log", { message: "b" });
  await there.publish("j", "state", { state: "succeeded" });
  await reading;
  assertEquals(got, [1, 2, 3]);
});
