// The runner across process deaths: bounded attempts, no ghost writes after a lost lease, and no
// step reported twice when a resumed job re-runs the steps after its last checkpoint.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { EventHub, type JobEvent, MemoryEventStore } from "../../jobs/events.ts";
import { MemoryJobStore } from "../../jobs/memory_store.ts";
import { JobRunner } from "../../jobs/runner.ts";

async function events(hub: EventHub, id: string): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of hub.subscribe(id)) out.push(e);
  return out;
}

/** A process that claims the job and dies at once (no heartbeat, no events). */
async function dieOn(store: MemoryJobStore, kind: string, times: number) {
  for (let i = 0; i < times; i++) {
    const j = await store.claim(`dead-${i}`, 1, [kind]);
    assert(j, "claimed");
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("a job whose process died on every attempt is failed with the reason, not run again", async () => {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(store, hub, { pollMs: 10, leaseMs: 300, maxAttempts: 3 });
  let ran = 0;
  runner.register("oom", () => {
    ran++;
    return Promise.resolve("done");
  });
  const job = await store.insert({ id: "j", kind: "oom", config: {} });
  await dieOn(store, "oom", 3);
  runner.start();
  const evs = await events(hub, job.id);
  await runner.stop();
  assertEquals(ran, 0, "the handler is not started a fourth time");
  const rec = (await store.get(job.id))!;
  assertEquals(rec.state, "failed");
  assertStringIncludes(rec.error!, "started 3 times");
  assertEquals((evs.at(-1)!.data as { state: string }).state, "failed");
});

Deno.test("fewer deaths than the bound: the job still resumes and succeeds", async () => {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(store, hub, { pollMs: 10, leaseMs: 300, maxAttempts: 3 });
  runner.register("flaky", () => Promise.resolve("done"));
  const job = await store.insert({ id: "j", kind: "flaky", config: {} });
  await dieOn(store, "flaky", 2);
  runner.start();
  const evs = await events(hub, job.id);
  await runner.stop();
  assertEquals(evs.at(-1)!.data, { state: "succeeded" });
  assertEquals((await store.get(job.id))!.attempts, 3);
});

Deno.test("a graceful shutdown is not a failed attempt", async () => {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  const make = () => new JobRunner(store, hub, { pollMs: 10, leaseMs: 300, maxAttempts: 1 });
  let started = 0;
  const handler = async (ctx: { signal: AbortSignal }) => {
    started++;
    if (started === 1) {
      await new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
      );
    }
    return "done";
  };
  const a = make();
  a.register("k", handler);
  a.start();
  const job = await a.submit("k", {});
  while (started < 1) await new Promise((r) => setTimeout(r, 5));
  await a.stop();
  const b = make();
  b.register("k", handler);
  b.start();
  const evs = await events(hub, job.id);
  await b.stop();
  assertEquals(evs.at(-1)!.data, { state: "succeeded" });
});

Deno.test("a worker that lost its job's lease leaves the job to the worker that took it", async () => {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(store, hub, { pollMs: 10, leaseMs: 150 });
  let aborted = false;
  runner.register("slow", async (ctx) => {
    await new Promise((_, reject) =>
      ctx.signal.addEventListener("abort", () => {
        aborted = true;
        reject(ctx.signal.reason);
      })
    );
  });
  runner.start();
  const job = await runner.submit("slow", {});
  while ((await store.get(job.id))!.state !== "running") {
    await new Promise((r) => setTimeout(r, 5));
  }
  // Another process took the job over (the first one looked dead to it).
  await store.update(job.id, { leaseOwner: "other", leaseExpires: new Date(Date.now() + 60_000) });
  while (!aborted) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  await runner.stop();
  const rec = (await store.get(job.id))!;
  assertEquals([rec.state, rec.leaseOwner, rec.error], ["running", "other", null]);
  const types = (await hub.store.after(job.id, 0)).map((e) => e.type);
  assertEquals(types, ["state", "state"], "nothing published after the lease was lost");
});

Deno.test("a resumed job does not publish again the metrics and progress of steps it re-runs", async () => {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  // The first process reported steps 1..5 (checkpoint at 4), then died.
  const job = await store.insert({ id: "j", kind: "train", config: {} });
  await hub.publish(job.id, "state", { state: "queued" });
  await store.claim("dead", 1, ["train"]);
  for (let s = 1; s <= 5; s++) {
    await hub.publish(job.id, "metrics", { step: s, mse: 1 / s });
    await hub.publish(job.id, "progress", { step: s, totalSteps: 8 });
  }
  await new Promise((r) => setTimeout(r, 5));
  const runner = new JobRunner(store, hub, { pollMs: 10, leaseMs: 300 });
  runner.register("train", async (ctx) => {
    for (let s = 5; s <= 8; s++) {
      await ctx.emit("metrics", { step: s, mse: 1 / s });
      await ctx.emit("progress", { step: s, totalSteps: 8 });
      await ctx.emit("log", { message: `step ${s}` });
    }
    return "done";
  });
  runner.start();
  const evs = await events(hub, job.id);
  await runner.stop();
  const steps = (type: string) =>
    evs.filter((e) => e.type === type).map((e) => (e.data as { step: number }).step);
  assertEquals(steps("metrics"), [1, 2, 3, 4, 5, 6, 7, 8]);
  assertEquals(steps("progress"), [1, 2, 3, 4, 5, 6, 7, 8]);
  assertEquals(evs.filter((e) => e.type === "log").length, 4, "other events are not filtered");
});
