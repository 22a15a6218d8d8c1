import { assertEquals, assertStringIncludes } from "@std/assert";
import { EventHub, type JobEvent, MemoryEventStore } from "../../jobs/events.ts";
import { MemoryJobStore } from "../../jobs/memory_store.ts";
import { JobRunner } from "../../jobs/runner.ts";

function setup() {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(store, hub, { pollMs: 10, leaseMs: 300 });
  return { store, hub, runner };
}

async function events(hub: EventHub, id: string): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of hub.subscribe(id)) out.push(e);
  return out;
}

Deno.test("a job runs to success and its events tell the story", async () => {
  const { store, hub, runner } = setup();
  runner.register("sum", async (ctx) => {
    const { n } = ctx.job.config as { n: number };
    let s = 0;
    for (let i = 1; i <= n; i++) {
      s += i;
      await ctx.emit("progress", { done: i, total: n });
    }
    return { sum: s };
  });
  runner.start();
  const job = await runner.submit("sum", { n: 4 });
  const evs = await events(hub, job.id);
  await runner.stop();
  assertEquals(evs.map((e) => e.type), [
    "state",
    "state",
    "progress",
    "progress",
    "progress",
    "progress",
    "result",
    "state",
  ]);
  assertEquals(evs.at(-2)!.data, { sum: 10 });
  assertEquals((await store.get(job.id))!.state, "succeeded");
});

Deno.test("a failing handler marks the job failed with its message", async () => {
  const { store, hub, runner } = setup();
  runner.register(
    "boom",
    () => Promise.reject(new Error("shape mismatch: SAE d_in 64 ≠ hook width 128")),
  );
  runner.start();
  const job = await runner.submit("boom", {});
  const evs = await events(hub, job.id);
  await runner.stop();
  assertEquals(evs.at(-1)!.data, {
    state: "failed",
    error: "shape mismatch: SAE d_in 64 ≠ hook width 128",
  });
  assertStringIncludes((await store.get(job.id))!.error!, "d_in 64");
});

Deno.test("cancel stops a running job within a step", async () => {
  const { store, hub, runner } = setup();
  let steps = 0;
  runner.register("loop", async (ctx) => {
    for (;;) {
      ctx.throwIfCancelled();
      steps++;
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  runner.start();
  const job = await runner.submit("loop", {});
  while (steps < 3) await new Promise((r) => setTimeout(r, 5));
  await runner.cancel(job.id);
  const evs = await events(hub, job.id);
  await runner.stop();
  assertEquals(evs.at(-1)!.data, { state: "cancelled" });
  assertEquals((await store.get(job.id))!.state, "cancelled");
});

Deno.test("a job left running by a dead process is claimed again after its lease and resumes", async () => {
  const store = new MemoryJobStore();
  const hub = new EventHub(new MemoryEventStore());
  // First process claims the job and dies without finishing (no heartbeats).
  const job = await store.insert({ id: "j1", kind: "resumable", config: {} });
  await store.claim("dead-process", 50, ["resumable"]);
  await store.update(job.id, { checkpoint: "/tmp/ckpt-j1" });
  const runner = new JobRunner(store, hub, { pollMs: 10, leaseMs: 300 });
  let sawCheckpoint: string | null = null;
  runner.register("resumable", (ctx) => {
    sawCheckpoint = ctx.job.checkpoint;
    return Promise.resolve("done");
  });
  runner.start();
  const evs = await events(hub, job.id);
  await runner.stop();
  assertEquals(sawCheckpoint, "/tmp/ckpt-j1");
  assertEquals(evs[0].data, { state: "running", resumed: true, owner: runner.owner });
  assertEquals((await store.get(job.id))!.state, "succeeded");
});

Deno.test("unknown job kind is a clear error", async () => {
  const { runner } = setup();
  runner.register("a", () => Promise.resolve());
  let msg = "";
  try {
    await runner.submit("b", {});
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEquals(msg, 'unknown job kind "b" (known: a)');
});
