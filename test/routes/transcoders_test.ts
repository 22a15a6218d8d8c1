// Transcoders over real HTTP at a tiny budget: POST /finetunes trains a skip transcoder from
// scratch at mlp:1 (MSE phase on shuffled (x_in, y) pairs, then kl_mse) with the usual SSE
// metrics, saves it in SAELens' transcoder layout and registers it; POST /evals CE-evaluates it with
// the MLP's output replaced; POST /experiments runs mse vs kl_mse arms from it and reports the
// CE-gap reduction. A bad MLP and hook_out without a transcoder are named.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { startTestService } from "../util/service.ts";

Deno.test({
  name: "transcoders: POST /finetunes from scratch, POST /evals, POST /experiments",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune", "eval", "experiment"] });
    const { url, post, follow: finish } = svc;
    try {
      const { job, evs } = await finish(
        await post("/finetunes", {
          kind: "kl_mse",
          hook: "mlp:1",
          init: { kind: "topk", d_sae: 64, k: 4, transcoder: "skip_transcoder" },
          tokens: 4 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          finetune_fraction: 0.5,
          shuffle_buffer_tokens: 64,
          metrics_every: 1,
          eval_sequences: 2,
        }),
      );
      assertEquals(
        evs.at(-1)!.data,
        { state: "succeeded" },
        JSON.stringify(evs.filter((e) => e.event === "error")),
      );
      const metrics = evs.filter((e) => e.event === "metrics").map((e) =>
        e.data as Record<string, number | string | null>
      );
      assertEquals(metrics.map((m) => m.phase), ["pretrain", "pretrain", "finetune", "finetune"]);
      for (const m of metrics.filter((m) => m.phase === "finetune")) {
        assert(typeof m.kl === "number" && m.kl > 0, `kl ${m.kl}`);
        assert(typeof m.fvu === "number" && m.fvu > 0, `fvu ${m.fvu}`);
      }
      const ft = await (await fetch(`${url}/finetunes/${job.id}`)).json();
      const saeId = ft.result.sae;
      const ev0 = ft.result.eval;
      assert(Number.isFinite(ev0.recon.fvu) && ev0.ceZeroAblation > ev0.ceClean);
      const sae = await (await fetch(`${url}/saes/${saeId}`)).json();
      assertEquals(sae.cfg.transcoder, { skip: true });
      assertEquals(sae.cfg.metadata.hookNameOut, "/blocks.1/fc_out/Add_output_0");
      assertEquals(sae.cfg.metadata.hookName, "/blocks.1/ln2/LayerNormalization_output_0");

      const ev = await finish(
        await post("/evals", { sae: saeId, sequences: 4, batch_size: 4, seq_len: 32 }),
      );
      assertEquals(ev.evs.at(-1)!.data, { state: "succeeded" }, JSON.stringify(ev.evs.slice(-3)));
      const r = (await (await fetch(`${url}/evals/${ev.job.id}`)).json()).result;
      assertEquals(r.tokens, 4 * 32);
      assert(r.ceZeroAblation > r.ceClean, "zeroing the MLP output costs CE");
      assert(r.recon.l0 > 0 && r.recon.l0 <= 4 && Number.isFinite(r.recon.fvu));

      const ex = await finish(
        await post("/experiments", {
          sae: saeId,
          arms: [{ type: "mse" }, { type: "kl_mse" }],
          tokens: 2 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          eval_sequences: 2,
          curve_points: 1,
          curve_sequences: 2,
          stability_every: 1,
        }),
      );
      assertEquals(ex.evs.at(-1)!.data, { state: "succeeded" }, JSON.stringify(ex.evs.slice(-3)));
      const got = await (await fetch(`${url}/experiments/${ex.job.id}`)).json();
      const table = got.table as Record<string, number | string | null>[];
      assertEquals(table.map((t) => t.arm), ["mse", "kl_mse"]);
      assertEquals(table[0].ceGapReduction, 0);
      assert(Number.isFinite(table[1].ceGapReduction as number));

      // A fine-tune of the saved transcoder may name its MLP as mlp:<layer>: the output stored in
      // its metadata is then not a second, conflicting hook_out.
      const again = await finish(
        await post("/finetunes", {
          kind: "kl_mse",
          sae: saeId,
          hook: "mlp:1",
          tokens: 2 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          eval_sequences: 0,
        }),
      );
      assertEquals(
        again.evs.at(-1)!.data,
        { state: "succeeded" },
        JSON.stringify(again.evs.slice(-3)),
      );

      // An adapter arm around a transcoder is refused by the job, naming the arm types.
      const lin = await finish(
        await post("/experiments", {
          sae: saeId,
          arms: [{ type: "linear_skip", rank: 2 }],
          tokens: 2 * 16,
          batch_size: 2,
          seq_len: 16,
          eval_sequences: 2,
          curve_points: 0,
        }),
      );
      assertStringIncludes(JSON.stringify(lin.evs), "a transcoder trains in arms of type");

      const bad = await post("/finetunes", {
        kind: "mse",
        hook: "mlp:9",
        init: { kind: "topk", d_sae: 64, k: 4, transcoder: "transcoder" },
        tokens: 64,
      });
      assertEquals(bad.status, 400);
      assertStringIncludes(await bad.text(), "mlp:0");
      const stray = await finish(
        await post("/finetunes", { kind: "mse", hook_out: "blocks.1.hook_mlp_out", tokens: 64 }),
      );
      assertStringIncludes(JSON.stringify(stray.evs), "hook_out is for transcoders");
    } finally {
      await svc.close();
    }
  },
});
