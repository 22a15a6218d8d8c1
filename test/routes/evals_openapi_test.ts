// /evals runs a CE-eval job on an uploaded SAELens SAE; /openapi.json describes the routes from
// the same zod schemas; /docs renders it; /datasets lists Brown.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../db/job_store.ts";
import { models } from "../../db/schema.ts";
import { EventHub } from "../../jobs/events.ts";
import { evalHandler } from "../../jobs/eval_job.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../../main.ts";
import { createApp } from "../../routes/app.ts";
import { createSaeTrainer } from "../../sae/trainers.ts";
import { initSae } from "../../sae/init.ts";
import { saeLensConfig, saeLensTensors } from "../../sae/io.ts";
import { serializeSafetensors } from "../../lib/safetensors.ts";
import { testGpu } from "../util/gpu.ts";
import { readSse } from "../util/sse.ts";

Deno.test({
  name: "POST /evals on an uploaded SAE; /openapi.json, /docs and /datasets",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const database = await openDatabase({ dataDir: "memory://" });
    await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
    const gpu = await testGpu();
    const events = new EventHub(new DbEventStore(database.db));
    const runner = new JobRunner(new DbJobStore(database.db), events, { pollMs: 50 });
    runner.register(
      "eval",
      evalHandler({ database, gpu, dataDir, createTrainer: createSaeTrainer }),
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
    try {
      const sae = initSae({
        kind: "topk",
        dIn: 128,
        dSae: 64,
        k: 8,
        metadata: { hookName: "/blocks.1/Add_2_output_0" },
      }, { seed: 3 });
      const form = new FormData();
      form.append("cfg.json", new Blob([JSON.stringify(saeLensConfig(sae))]), "cfg.json");
      form.append(
        "sae_weights.safetensors",
        new Blob([serializeSafetensors(saeLensTensors(sae)) as Uint8Array<ArrayBuffer>]),
        "sae_weights.safetensors",
      );
      const up = await fetch(`${url}/saes`, { method: "POST", body: form });
      assertEquals(up.status, 201, await up.clone().text());
      const saeId = (await up.json()).id;
      const res = await fetch(`${url}/evals`, {
        method: "POST",
        body: JSON.stringify({ sae: saeId, sequences: 8, seq_len: 64 }),
      });
      assertEquals(res.status, 202);
      const job = await res.json();
      const evs = await readSse(await fetch(`${url}${job.links.events}`));
      assertEquals(
        evs.at(-1)!.data,
        { state: "succeeded" },
        JSON.stringify(evs.filter((e) => e.event === "error")),
      );
      assert(evs.some((e) => e.event === "progress"));
      const got = await (await fetch(`${url}/evals/${job.id}`)).json();
      assertEquals(got.result.tokens, 8 * 64);
      assert(got.result.ceSpliced > got.result.ceClean && got.result.recon.l0 > 0);

      const doc = await (await fetch(`${url}/openapi.json`)).json();
      assertEquals(doc.openapi, "3.1.0");
      for (
        const p of ["/finetunes", "/finetunes/{id}/events", "/evals", "/saes", "/models", "/health"]
      ) assert(p in doc.paths, p);
      const ft = doc.components.schemas.FinetuneConfig;
      assertEquals(ft.properties.lr.default, 5e-5);
      assertEquals(ft.properties.kind.enum, ["mse", "kl_mse", "e2e", "kl_only"]);
      const docs = await (await fetch(`${url}/docs`)).text();
      assertStringIncludes(docs, "/finetunes/{id}/events");
      assertStringIncludes(docs, "FinetuneConfig");
      assertEquals((await (await fetch(`${url}/datasets`)).json()).datasets[0].id, "brown");
      assertEquals((await fetch(`${url}/evals/nope`)).status, 404);
    } finally {
      await runner.stop();
      await server.shutdown();
      await database.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
