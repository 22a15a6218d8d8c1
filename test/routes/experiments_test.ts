// /experiments over real HTTP: bad requests are named, a two-arm experiment (MSE-only and a linear
// skip) runs from one SAE, its table compares the arms, and its plots download as SVG.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { saes } from "../../db/schema.ts";
import { initSae } from "../../sae/init.ts";
import { saveSae } from "../../sae/io.ts";
import { startTestService } from "../util/service.ts";
import { readSse } from "../util/sse.ts";

Deno.test({
  name: "POST /experiments: two arms on identical data, a results table, SVG plots",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["experiment"] });
    const { url, database, dataDir } = svc;
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
      await database.db.insert(saes).values({
        id: "relu0",
        name: "a ReLU SAE",
        path: `${dataDir}/relu0`,
        architecture: "relu",
        dIn: 128,
        dSae: 64,
      });
      const before = await post({ sae: "relu0", arms: [{ type: "lm_lora", layers: "all" }] });
      assertEquals(before.status, 400);
      const err = (await before.json()).error;
      assertStringIncludes(err.message, "needs a TopK SAE");
      assertEquals(err.details[0].path, "arms.0.layers");

      const res = await post({
        sae: "sae0",
        arms: [
          { type: "mse" },
          { type: "linear_skip", rank: 2 },
          { type: "lm_lora", rank: 2, layers: "all" },
        ],
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
      assertEquals(got.table.map((r: { arm: string }) => r.arm), [
        "mse",
        "linear_skip r=2",
        "lm_lora r=2",
      ]);
      // LoRA on every block, the ones before the hook trained through the SAE: it ran and moved.
      const lm = got.arms[2];
      assert(Number.isFinite(lm.final.ceGap) && lm.curve[1][1] !== lm.curve[0][1], "lm_lora moved");
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
      await svc.close();
    }
  },
});

Deno.test({
  name: "POST /experiments kinds_frontier: a row per kind × sparsity × objective, two SVG plots",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["experiment"] });
    const post = (body: unknown) =>
      fetch(`${svc.url}/experiments`, { method: "POST", body: JSON.stringify(body) });
    try {
      const withSae = await post({ preset: "kinds_frontier", sae: "sae0" });
      assertEquals(withSae.status, 400, "a preset trains its own SAEs");
      assertStringIncludes(await withSae.text(), "sae");
      assertEquals((await post({ preset: "nope" })).status, 400);
      const badModel = await post({ preset: "kinds_frontier", model: "nope" });
      assertEquals((await badModel.json()).error.code, "unknown_model");

      const sparsities = [4, 8];
      const res = await post({
        preset: "kinds_frontier",
        sparsities,
        tokens: 6 * 2 * 16,
        d_sae: 64,
        seq_len: 16,
        batch_size: 2,
        eval_sequences: 2,
      });
      assertEquals(res.status, 202);
      const exp = await res.json();
      const all = await readSse(await fetch(`${svc.url}${exp.links.events}`));
      assertEquals(all.at(-1)!.data, { state: "succeeded" }, JSON.stringify(all.slice(-3)));
      // Progress streams per run as it trains.
      const progressed = new Set(
        all.filter((e) => e.event === "progress").map((e) => (e.data as { arm: string }).arm),
      );
      assertEquals(progressed.size, 4 * sparsities.length * 2);
      assert(all.some((e) => e.event === "metrics" && (e.data as { arm?: string }).arm));

      const got = await (await fetch(`${svc.url}/experiments/${exp.id}`)).json();
      assertEquals(got.state, "succeeded");
      type Row = {
        run: string;
        kind: string;
        sparsity: number;
        objective: string;
        l0: number;
        fvu: number;
        ceGap: number;
        error: string | null;
      };
      const rows = got.table as Row[];
      const keys = rows.map((r) => `${r.kind} ${r.sparsity} ${r.objective}`).sort();
      const want = ["topk", "batchtopk", "relu", "jumprelu"].flatMap((k) =>
        sparsities.flatMap((s) => ["mse", "kl_mse"].map((o) => `${k} ${s} ${o}`))
      ).sort();
      assertEquals(keys, want);
      for (const r of rows) {
        assertEquals(r.error, null, r.run);
        for (const v of [r.l0, r.fvu, r.ceGap]) assert(Number.isFinite(v), `${r.run}: ${v}`);
      }
      // TopK's L0 is k by construction: the table reports what the SAE did, not the request.
      for (const r of rows.filter((r) => r.kind === "topk")) assertEquals(r.l0, r.sparsity);
      assertEquals(got.links.plots.map((p: string) => p.split("/").at(-1)).sort(), [
        "ce_gap_vs_l0.svg",
        "fvu_vs_l0.svg",
      ]);
      for (const p of got.links.plots) {
        const svg = await (await fetch(`${svc.url}${p}`)).text();
        assert(svg.startsWith("<svg"), p);
        for (const k of ["topk", "batchtopk", "relu", "jumprelu"]) {
          assertStringIncludes(svg, `${k} mse`);
          assertStringIncludes(svg, `${k} kl_mse`);
        }
      }
    } finally {
      await svc.close();
    }
  },
});
