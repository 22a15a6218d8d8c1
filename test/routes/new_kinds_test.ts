// Gated and Matryoshka BatchTopK SAEs over real HTTP at a tiny budget: POST /finetunes trains each
// from scratch (MSE phase, then kl_mse) with the usual SSE metrics and registers it under its own
// architecture; POST /evals CE-evaluates it, a Matryoshka SAE with one row per prefix; a bad
// prefix ladder, or one given to another kind, is a 400 naming the field.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { startTestService } from "../util/service.ts";

Deno.test({
  name: "gated and matryoshka_batchtopk: POST /finetunes from scratch, then POST /evals",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune", "eval"] });
    const { url, post } = svc;
    const finish = async (res: Response) => {
      const { job, evs } = await svc.follow(res);
      assertEquals(evs.at(-1)!.data, { state: "succeeded" }, JSON.stringify(evs.slice(-3)));
      return { job, evs };
    };
    try {
      const inits = [
        { kind: "gated", d_sae: 64 },
        { kind: "matryoshka_batchtopk", d_sae: 64, k: 4, matryoshka_widths: [8, 32, 64] },
      ];
      for (const init of inits) {
        const { job, evs } = await finish(
          await post("/finetunes", {
            kind: "kl_mse",
            init,
            tokens: 4 * 2 * 16,
            batch_size: 2,
            seq_len: 16,
            finetune_fraction: 0.5,
            metrics_every: 1,
            eval_sequences: 2,
          }),
        );
        const metrics = evs.filter((e) => e.event === "metrics").map((e) =>
          e.data as Record<string, number | string | null>
        );
        assertEquals(metrics.map((m) => m.phase), ["pretrain", "pretrain", "finetune", "finetune"]);
        for (const m of metrics.filter((m) => m.phase === "finetune")) {
          assert(typeof m.kl === "number" && m.kl > 0, `${init.kind}: kl ${m.kl}`);
        }
        const ft = await (await fetch(`${url}/finetunes/${job.id}`)).json();
        const sae = await (await fetch(`${url}/saes/${ft.result.sae}`)).json();
        assertEquals(sae.architecture, init.kind);

        const ev = await finish(
          await post("/evals", { sae: ft.result.sae, sequences: 4, batch_size: 4, seq_len: 32 }),
        );
        const r = (await (await fetch(`${url}/evals/${ev.job.id}`)).json()).result;
        assertEquals(r.tokens, 4 * 32);
        assert(r.ceZeroAblation > r.ceSpliced && r.ceSpliced >= r.ceClean - 1e-3, init.kind);
        assert(r.recon.l0 > 0 && Number.isFinite(r.recon.fvu), `${init.kind}: ${r.recon.l0}`);
        if (init.kind === "matryoshka_batchtopk") {
          const widths = r.prefixes.map((p: { width: number }) => p.width);
          assertEquals(widths, [8, 32, 64]);
          assertEquals(r.prefixes.at(-1).ceGap, r.ceGap, "the last prefix is the whole SAE");
        } else {
          assertEquals(r.prefixes, undefined);
        }
      }
      const bad = await post("/finetunes", {
        kind: "mse",
        init: { kind: "matryoshka_batchtopk", d_sae: 64, matryoshka_widths: [32, 8, 64] },
        tokens: 64,
      });
      assertEquals(bad.status, 400);
      assertStringIncludes(
        await bad.text(),
        "matryoshka_widths: prefix widths must be strictly increasing positive integers, got [32,8,64]",
      );
      const stray = await post("/finetunes", {
        kind: "mse",
        init: { kind: "gated", d_sae: 64, matryoshka_widths: [8, 64] },
        tokens: 64,
      });
      assertEquals(stray.status, 400);
      const body = await stray.json();
      assertStringIncludes(JSON.stringify(body), "only matryoshka_batchtopk has prefixes");
      assertStringIncludes(JSON.stringify(body), "matryoshka_widths");
    } finally {
      await svc.close();
    }
  },
});
