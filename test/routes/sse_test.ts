import { assertEquals } from "@std/assert";
import { Hono } from "hono";
import { EventHub, MemoryEventStore } from "../../jobs/events.ts";
import { streamJobEvents } from "../../routes/sse.ts";
import { readSse } from "../util/sse.ts";

function served(hub: EventHub) {
  const app = new Hono();
  app.get("/jobs/:id/events", (c) => streamJobEvents(c, hub, c.req.param("id"), 20));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  return { server, url: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("SSE over real HTTP: history, live events, Last-Event-ID resume without gap or duplicate", async () => {
  const hub = new EventHub(new MemoryEventStore());
  const { server, url } = served(hub);
  try {
    await hub.publish("j", "state", { state: "running" });
    const live = fetch(`${url}/jobs/j/events`).then(readSse);
    for (let i = 0; i < 5; i++) {
      await hub.publish("j", "metrics", { step: i });
      await new Promise((r) => setTimeout(r, 10)); // let a keep-alive or two interleave
    }
    await hub.publish("j", "state", { state: "succeeded" });
    const all = await live;
    assertEquals(all.map((e) => e.id), [1, 2, 3, 4, 5, 6, 7]);
    assertEquals(all[3], { id: 4, event: "metrics", data: { step: 2 } });
    const resumed = await fetch(`${url}/jobs/j/events`, { headers: { "Last-Event-ID": "4" } })
      .then(readSse);
    assertEquals(resumed.map((e) => e.id), [5, 6, 7]);
    const viaQuery = await fetch(`${url}/jobs/j/events?lastEventId=6`).then(readSse);
    assertEquals(viaQuery.map((e) => e.id), [7]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("50 concurrent SSE subscribers all receive every event", async () => {
  const hub = new EventHub(new MemoryEventStore());
  const { server, url } = served(hub);
  try {
    const subs = Array.from({ length: 50 }, () => fetch(`${url}/jobs/k/events`).then(readSse));
    while (hub.subscriberCount("k") < 50) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 30; i++) await hub.publish("k", "metrics", { step: i });
    await hub.publish("k", "state", { state: "succeeded" });
    for (const got of await Promise.all(subs)) {
      assertEquals(got.map((e) => e.id), Array.from({ length: 31 }, (_, i) => i + 1));
    }
  } finally {
    await server.shutdown();
  }
});
