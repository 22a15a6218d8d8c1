// /evals runs a CE-eval job on an uploaded SAELens SAE; /openapi.json describes the routes from
// the same zod schemas; /docs renders it; /datasets lists Brown.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { initSae } from "../../sae/init.ts";
import { saeLensConfig, saeLensTensors } from "../../sae/io.ts";
import { serializeSafetensors } from "../../lib/safetensors.ts";
import { startTestService } from "../util/service.ts";
import { readSse } from "../util/sse.ts";

Deno.test({
  name: "POST /evals on an uploaded SAE; /openapi.json, /docs and /datasets",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["eval"] });
    const { url } = svc;
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
      const health = await (await fetch(`${url}/health`)).json();
      assertEquals(got.result.runtime, health.onnxruntime.auto);
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
      await svc.close();
    }
  },
});
