// /health names the ONNX Runtime and EP that a job with ep "auto" runs on, and which EPs start.
import { assert, assertEquals } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { EventHub, MemoryEventStore } from "../../jobs/events.ts";
import { MemoryJobStore } from "../../jobs/memory_store.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { chooseEp, createSession, runtimeOf } from "../../lm/session.ts";
import { probeModel } from "../../lm/native_ort.ts";
import { createApp } from "../../routes/app.ts";
import { testGpu } from "../util/gpu.ts";

Deno.test({
  name: "/health: the runtime and EP that auto resolves to, and each EP's availability",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const database = await openDatabase({ dataDir: "memory://" });
    try {
      const events = new EventHub(new MemoryEventStore());
      const app = createApp({
        config: Config.parse({}),
        gpu: await testGpu(),
        database,
        events,
        runner: new JobRunner(new MemoryJobStore(), events),
        startedAt: performance.now(),
      });
      const h = (await (await app.request("/health")).json()).onnxruntime;
      const auto = await chooseEp("auto");
      assertEquals(h.auto, { name: runtimeOf(auto), ep: auto });
      assertEquals(h.auto.ep, h.eps.cuda.available ? "cuda" : "cpu");
      assertEquals(h.versions.node, "1.30.0");
      assertEquals(h.versions.web, "1.30.0");
      assertEquals(Object.keys(h.eps).sort(), ["cpu", "cuda", "wasm", "webgpu"]);
      // What /health says is what happens: each EP it calls available starts, the others do not.
      for (const ep of ["cpu", "cuda", "wasm"] as const) {
        assertEquals(h.eps[ep].runtime, runtimeOf(ep));
        const started = await createSession(probeModel(), { ep }).then(
          async (s) => (await s.release(), true),
          () => false,
        );
        assertEquals(started, h.eps[ep].available, `${ep}: ${h.eps[ep].reason}`);
        if (!started) assert(h.eps[ep].reason.length > 0);
      }
      assertEquals(h.eps.webgpu, { runtime: "onnxruntime-web", available: true });
    } finally {
      await database.close();
    }
  },
});
