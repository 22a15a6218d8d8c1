// Submit-time checks over HTTP: jobs that could never run are 400s naming the setting and the
// limit (from this machine's adapter and memory), evals are bounded and refuse a seq_len beyond
// the model's context, and evals and experiments can be cancelled like fine-tunes.
import { assertEquals, assertStringIncludes } from "@std/assert";
import { saes } from "../../db/schema.ts";
import { startTestService } from "../util/service.ts";

Deno.test({
  name:
    "POST /finetunes, /evals, /experiments: infeasible jobs are 400s; evals and experiments cancel",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The runner is not started: accepted jobs stay queued, nothing trains.
    const svc = await startTestService({ jobs: ["finetune", "eval", "experiment"], start: false });
    const { url, database, gpu } = svc;
    await database.db.insert(saes).values({
      id: "s",
      name: "a TopK SAE",
      path: "/nonexistent",
      architecture: "topk",
      dIn: 128,
      dSae: 64,
      modelId: "tiny-neox",
      hook: "/blocks.1/Add_2_output_0",
    });
    const post = async (path: string, body: unknown) => {
      const r = await fetch(`${url}${path}`, { method: "POST", body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    const refused = (r: { status: number; body: { error?: { details?: { path: string }[] } } }) =>
      r.status === 400 ? r.body.error?.details?.[0]?.path : `status ${r.status}`;
    try {
      // d_sae one past what this adapter can bind as one weight matrix (when the schema allows it).
      const limits = gpu.info.limits;
      const gpuMax = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
      const tooWide = Math.floor(gpuMax / (128 * 4)) + 1;
      const small = { kind: "mse", tokens: 256, batch_size: 2, seq_len: 16, eval_sequences: 0 };
      if (tooWide <= 1 << 20) {
        const r = await post("/finetunes", { ...small, init: { kind: "topk", d_sae: tooWide } });
        assertEquals(refused(r), "init.d_sae");
        assertEquals(r.body.error.code, "infeasible");
        assertStringIncludes(r.body.error.message, `${tooWide}`);
      } else {
        console.log(`this adapter binds ${gpuMax} bytes: every d_sae the schema allows fits it`);
      }
      const ok = await post("/finetunes", { ...small, init: { kind: "topk", d_sae: 64 } });
      assertEquals(ok.status, 202, JSON.stringify(ok.body));

      const wasm = await post("/finetunes", { kind: "kl_mse", batch_size: 4096, ep: "wasm" });
      assertEquals(refused(wasm), "batch_size");
      assertStringIncludes(wasm.body.error.message, "wasm heap");

      const buffer = await post("/finetunes", {
        kind: "kl_mse",
        tokens: 1 << 27,
        shuffle_buffer_tokens: 1 << 26,
        ep: "wasm",
      });
      const needs = 2 ** 26 * 128 * 4, half = Deno.systemMemoryInfo().total / 2;
      if (needs > half) assertEquals(refused(buffer), "shuffle_buffer_tokens");
      else assertEquals(buffer.status, 202, JSON.stringify(buffer.body));

      // Evals: bounded size, context checked at submit.
      assertEquals(refused(await post("/evals", { sae: "s", sequences: 5000 })), "sequences");
      assertEquals(refused(await post("/evals", { sae: "s", seq_len: 256 })), "seq_len");
      const ev = await post("/evals", { sae: "s", sequences: 8, batch_size: 2, seq_len: 16 });
      assertEquals(ev.status, 202, JSON.stringify(ev.body));
      const cancelled = await post(`/evals/${ev.body.id}/cancel`, {});
      assertEquals([cancelled.status, cancelled.body.state], [200, "cancelled"]);
      const after = await (await fetch(`${url}/evals/${ev.body.id}`)).json();
      assertEquals(after.state, "cancelled");
      assertEquals((await post("/evals/nope/cancel", {})).status, 404);

      const ex = await post("/experiments", {
        sae: "s",
        arms: [{ type: "mse" }],
        tokens: 256,
        batch_size: 2,
        seq_len: 16,
      });
      assertEquals(ex.status, 202, JSON.stringify(ex.body));
      const exCancelled = await post(`/experiments/${ex.body.id}/cancel`, {});
      assertEquals([exCancelled.status, exCancelled.body.state], [200, "cancelled"]);
      const big = await post("/experiments", {
        sae: "s",
        arms: [{ type: "mse", batch_size: 4096 }],
        ep: "wasm",
      });
      assertEquals(refused(big), "arms.0.batch_size");
    } finally {
      await svc.close();
    }
  },
});
