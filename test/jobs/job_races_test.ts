// Cancel during the final eval registers no SAE; an SAE with an Inf weight fails its job with a
// message that blames the SAE (not "the last good checkpoint was kept" when there was none).
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { eq } from "drizzle-orm";
import { saes } from "../../db/schema.ts";
import { initSae } from "../../sae/init.ts";
import { saveSae } from "../../sae/io.ts";
import { startTestService } from "../util/service.ts";
import { readSse } from "../util/sse.ts";

const HOOK = "/blocks.1/Add_2_output_0";

Deno.test({
  name: "a fine-tune cancelled during its final eval leaves no SAE registered",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      const res = await fetch(`${svc.url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "mse",
          tokens: 2 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          init: { kind: "topk", d_sae: 64, k: 4 },
          eval_sequences: 4096,
        }),
      });
      const job = await res.json();
      assertEquals(res.status, 202, JSON.stringify(job));
      const reader = (await fetch(`${svc.url}/finetunes/${job.id}/events`)).body!
        .pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes("held-out sequences")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before the eval:\n${text}`);
        text += value;
      }
      await reader.cancel();
      await fetch(`${svc.url}/finetunes/${job.id}/cancel`, { method: "POST" });
      const events = await readSse(await fetch(`${svc.url}/finetunes/${job.id}/events`));
      assertEquals(events.at(-1)!.data, { state: "cancelled" });
      const rows = await svc.database.db.select().from(saes).where(eq(saes.id, job.id));
      assertEquals(rows.length, 0, "no SAE registered for a cancelled job");
      const saeDir = `${svc.dataDir}/saes/${job.id}`;
      assert(!(await Deno.stat(saeDir).then(() => true, () => false)), "no SAE files left");
    } finally {
      await svc.close();
    }
  },
});

Deno.test({
  name: "an SAE with an Inf weight fails its fine-tune with a message that blames the SAE",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      const sae = initSae({
        kind: "topk",
        dIn: 128,
        dSae: 64,
        k: 4,
        metadata: { model: "tiny-neox", hookName: HOOK },
      }, { seed: 3 });
      sae.weights.W_dec[17] = Infinity;
      await saveSae(`${svc.dataDir}/inf`, sae);
      await svc.database.db.insert(saes).values({
        id: "inf",
        name: "Inf weight",
        path: `${svc.dataDir}/inf`,
        architecture: "topk",
        dIn: 128,
        dSae: 64,
        modelId: "tiny-neox",
        hook: HOOK,
        cfg: sae.cfg,
      });
      // Straight to the runner: a request-time check may refuse it earlier, which is also right.
      const job = await svc.runner.submit("finetune", {
        kind: "kl_mse",
        sae: "inf",
        tokens: 4 * 2 * 16,
        batch_size: 2,
        seq_len: 16,
        eval_sequences: 0,
      });
      const events = await readSse(await fetch(`${svc.url}/finetunes/${job.id}/events`));
      const last = events.at(-1)!.data as { state: string; error: string };
      assertEquals(last.state, "failed");
      assertStringIncludes(last.error, 'SAE "inf"');
      assertStringIncludes(last.error, "W_dec");
      assert(!last.error.includes("checkpoint was kept"), last.error);
    } finally {
      await svc.close();
    }
  },
});
