// A fine-tune through the service over real HTTP on loopback: start it, follow its SSE stream to
// the end, reconnect with Last-Event-ID (no gap, no duplicate), fetch the SAE it wrote.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { parseSafetensors } from "../../lib/safetensors.ts";
import { startTestService } from "../util/service.ts";
import { referenceTrainerFactory } from "../util/reference_trainer.ts";
import { readSse } from "../util/sse.ts";

Deno.test({
  name:
    "POST /finetunes on the embedded default: SSE to the end, resume by Last-Event-ID, download the SAE",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({
      jobs: ["finetune"],
      createTrainer: referenceTrainerFactory,
    });
    const { url } = svc;
    try {
      const bad = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({ kind: "kl", lr: "x" }),
      });
      assertEquals(bad.status, 400);
      assertEquals((await bad.json()).error.details.map((d: { path: string }) => d.path).sort(), [
        "kind",
        "lr",
      ]);
      const unknown = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({ kind: "mse", sae: "nope" }),
      });
      assertEquals((await unknown.json()).error.code, "unknown_sae");
      const long = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({ kind: "mse", seq_len: 256 }),
      });
      assertEquals(long.status, 400);
      assertStringIncludes((await long.json()).error.message, "context of 128");

      const res = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "kl_mse",
          tokens: 4 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          metrics_every: 1,
          checkpoint_every: 2,
          finetune_fraction: 0.5,
          init: { kind: "topk", d_sae: 32, k: 4 },
          eval_sequences: 2,
        }),
      });
      assertEquals(res.status, 202);
      const job = await res.json();
      const all = await readSse(await fetch(`${url}${job.links.events}`));
      const types = all.map((e) => e.event);
      assertEquals(all.map((e) => e.id), all.map((_, i) => i + 1), "ids 1, 2, 3, … without gaps");
      assertEquals(
        all.at(-1)!.data,
        { state: "succeeded" },
        JSON.stringify(all.filter((e) => e.event === "error")),
      );
      assertEquals(types.filter((t) => t === "metrics").length, 4);
      const metricsEvents = all.filter((e) => e.event === "metrics").map((e) =>
        e.data as Record<string, unknown>
      );
      assertEquals(metricsEvents.map((m) => m.phase), [
        "pretrain",
        "pretrain",
        "finetune",
        "finetune",
      ]);
      assert(metricsEvents[3].alpha !== null && (metricsEvents[3].kl as number) >= 0);
      const result = all.find((e) => e.event === "result")!.data as {
        sae: string;
        eval: { ceClean: number };
        runtime: { name: string; ep: string };
      };
      assert(result.eval.ceClean > 0);
      // The job records the runtime and EP it ran on: ep "auto", so what /health says auto is.
      const health = await (await fetch(`${url}/health`)).json();
      assertEquals(result.runtime, health.onnxruntime.auto);

      const resumed = await readSse(
        await fetch(`${url}${job.links.events}`, { headers: { "Last-Event-ID": "3" } }),
      );
      assertEquals(resumed.map((e) => e.id), all.slice(3).map((e) => e.id));

      const rows = (await (await fetch(`${url}/finetunes/${job.id}/metrics`)).json()).metrics;
      assertEquals(rows.map((r: { step: number }) => r.step), [1, 2, 3, 4]);
      const cfg = await (await fetch(`${url}/saes/${result.sae}/cfg.json`)).json();
      assertEquals([cfg.d_in, cfg.d_sae], [128, 32]);
      assertStringIncludes(JSON.stringify(cfg), "/blocks.1/Add_2_output_0");
      const st = parseSafetensors(
        new Uint8Array(
          await (await fetch(`${url}/saes/${result.sae}/sae_weights.safetensors`)).arrayBuffer(),
        ),
      );
      assertEquals(st.tensors.get("W_dec")!.shape, [32, 128]);
      assertEquals((await fetch(`${url}/finetunes/nope`)).status, 404);
    } finally {
      await svc.close();
    }
  },
});
