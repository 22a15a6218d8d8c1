// /experiments over real HTTP: bad requests are named, a two-arm experiment (MSE-only and a linear
// skip) runs from one SAE, its table compares the arms, and its plots download as SVG.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../db/job_store.ts";
import { MetricsWriter } from "../../db/metrics_writer.ts";
import { models, saes } from "../../db/schema.ts";
import { EventHub } from "../../jobs/events.ts";
import { experimentHandler } from "../../jobs/experiment_job.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../../main.ts";
import { createApp } from "../../routes/app.ts";
import { initSae } from "../../sae/init.ts";
import { saveSae } from "../../sae/io.ts";
import { testGpu } from "../util/gpu.ts";
import { readSse } from "../util/sse.ts";

Deno.test({
  name: "POST /experiments: two arms on identical data, a results table, SVG plots",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const database = await openDatabase({ dataDir: "memory://" });
    await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
    const sae = initSae({
      kind: "topk",
      dIn: 128,
      dSae: 64,
      k: 4,
      metadata: { model: "tiny-neox", hookName: "/blocks.1/Add_2_output_0", contextSize: 16 },
    }, { seed: 1 });
    await saveSae(`${dataDir}/sae0`, sae);
    await database.db.insert(saes).values({
      id: "sae0",
      name: "random",
      path: `${dataDir}/sae0`,
      architecture: "topk",
      dIn: 128,
      dSae: 64,
      modelId: "tiny-neox",
      hook: "/blocks.1/Add_2_output_0",
      cfg: sae.cfg,
    });
    const gpu = await testGpu();
    const events = new EventHub(new DbEventStore(database.db));
    const runner = new JobRunner(new DbJobStore(database.db), events, { pollMs: 50 });
    runner.register(
      "experiment",
      experimentHandler({ database, gpu, dataDir, metrics: new MetricsWriter(database.db) }),
    );
    const app = createApp({
      config: Config.parse({ dataDir }),
      gpu,
      database,
      runner,
      events,
      startedAt: performance.now(),
    });
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
    const url = `http://127.0.0.1:${server.addr.port}`;
    runner.start();
    const post = (body: unknown) =>
      fetch(`${url}/experiments`, { method: "POST", body: JSON.stringify(body) });
    try {
      const none = await post({ sae: "sae0" });
      assertEquals(none.status, 400);
      assertStringIncludes(await none.text(), "give at least one arm");
      const unknown = await post({ sae: "nope", arms: [{ type: "mse" }] });
      assertEquals((await unknown.json()).error.code, "unknown_sae");
      const badType = await post({ sae: "sae0", arms: [{ type: "magic" }] });
      assertEquals(badType.status, 400);

      const res = await post({
        sae: "sae0",
        arms: [{ type: "mse" }, { type: "linear_skip", rank: 2 }],
        tokens: 3 * 2 * 16,
        batch_size: 2,
        seq_len: 16,
        eval_sequences: 2,
        curve_points: 1,
        curve_sequences: 2,
        stability_every: 1,
      });
      assertEquals(res.status, 202);
      const exp = await res.json();
      const all = await readSse(await fetch(`${url}${exp.links.events}`));
      assertEquals(all.at(-1)!.data, { state: "succeeded" }, JSON.stringify(all.slice(-3)));
      const got = await (await fetch(`${url}/experiments/${exp.id}`)).json();
      assertEquals(got.state, "succeeded");
      assertEquals(got.table.map((r: { arm: string }) => r.arm), ["mse", "linear_skip r=2"]);
      assertEquals(got.table[0].ceGapReduction, 0);
      assert(Number.isFinite(got.table[1].ceGap) && Number.isFinite(got.table[1].ceGapReduction));
      const mse = got.arms[0];
      assertEquals(mse.curve.map((p: number[]) => p[0]), [0, 96]);
      // Weight stability: sampled at the start (cos = 1) and every step after it.
      assertEquals(mse.stability.decoder.map((p: number[]) => p[0]), [0, 32, 64, 96]);
      assertEquals(mse.stability.decoder[0].slice(1), [1, 1, 1]);
      assertEquals(got.arms[1].stability.decoder, [], "the SAE is frozen in an adapter arm");
      assertEquals(got.links.plots.length, 4);
      for (const p of got.links.plots) {
        const r = await fetch(`${url}${p}`);
        assertEquals(r.headers.get("content-type"), "image/svg+xml; charset=utf-8");
        assertStringIncludes(await r.text(), "<svg");
      }
      assertEquals((await fetch(`${url}/experiments/${exp.id}/plots/nope.svg`)).status, 404);
      assertEquals((await (await fetch(`${url}/experiments`)).json()).experiments.length, 1);
    } finally {
      await runner.stop();
      await server.shutdown();
      await database.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
