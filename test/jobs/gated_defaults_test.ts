// A gated SAE trained from scratch with its defaults (only init.kind and d_sae set) through the
// finetune job comes out alive at a small budget: few dead latents, a sane L0 at evaluation (the L1
// controller on its way to target_l0 32), FVU below 1, r_mag and b_mag trained and saved.
import { assert, assertEquals } from "@std/assert";
import { loadSae } from "../../sae/io.ts";
import { startTestService } from "../util/service.ts";

Deno.test({
  name: "gated trains a live SAE from scratch with its defaults",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      type Row = { l0: number; fvu?: number; deadFraction?: number; l1Lambda?: number };
      type Result = { eval: { recon: { fvu: number; l0: number } } };
      const { id, result: r, metrics: rows, errors } = await svc.runJob<Result, Row>("finetune", {
        kind: "kl_mse",
        tokens: 32 * 8 * 64,
        seq_len: 64,
        init: { kind: "gated", d_sae: 512 },
        metrics_every: 4,
        eval_sequences: 16,
      });
      const m = rows.at(-1);
      assert(r && m, `gated: ${JSON.stringify(errors)}`);
      const { l0, fvu } = r.eval.recon;
      assert(fvu < 1, `gated: FVU ${fvu}`);
      assert(l0 >= 2 && l0 <= 128, `gated: L0 at evaluation ${l0}, expected in [2, 128]`);
      assert(m.fvu !== undefined && m.fvu < 1, `gated: last step's FVU ${m.fvu}`);
      assert(
        m.deadFraction !== undefined && m.deadFraction <= 0.5,
        `gated: dead fraction ${m.deadFraction}`,
      );
      // The controller drives λ (it starts at rms/d_in and moves every step after the warm-up).
      const lambdas = rows.map((row) => row.l1Lambda).filter((v) => v !== undefined);
      assert(new Set(lambdas).size > 1, `gated: λ never moved (${lambdas})`);
      const sae = await loadSae(`${svc.dataDir}/saes/${id}`);
      assertEquals(sae.cfg.kind, "gated");
      // The controller's last λ is saved (raw-activation units), for a later fine-tune to start at.
      assert(sae.cfg.l1Coefficient! > 0, `l1_coefficient saved: ${sae.cfg.l1Coefficient}`);
      assert(sae.weights.r_mag!.some((v) => v !== 0), "r_mag trained from 0");
      assert(sae.weights.b_mag!.some((v) => v !== 0), "b_mag trained from 0");
    } finally {
      await svc.close();
    }
  },
});
