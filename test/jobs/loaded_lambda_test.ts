// A loaded relu SAE without an L1 coefficient (as most SAELens releases are) starts the fine-tune's
// controller at the scale-free default, rms/d_in of its activations, not at a fixed λ that would
// silence it within the controller's first steps.
import { assert } from "@std/assert";
import { saes } from "../../db/schema.ts";
import { initSae } from "../../sae/init.ts";
import { saveSae } from "../../sae/io.ts";
import { startTestService } from "../util/service.ts";

const HOOK = "/blocks.1/Add_2_output_0";

Deno.test({
  name: "a loaded relu SAE without l1_coefficient fine-tunes from λ = rms/d_in",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      const sae = initSae({
        kind: "relu",
        dIn: 128,
        dSae: 64,
        metadata: { model: "tiny-neox", hookName: HOOK },
      }, { seed: 5 });
      assert(sae.cfg.l1Coefficient === undefined);
      await saveSae(`${svc.dataDir}/nolambda`, sae);
      await svc.database.db.insert(saes).values({
        id: "nolambda",
        name: "relu without λ",
        path: `${svc.dataDir}/nolambda`,
        architecture: "relu",
        dIn: 128,
        dSae: 64,
        modelId: "tiny-neox",
        hook: HOOK,
        cfg: sae.cfg,
      });
      const { metrics, errors } = await svc.runJob<unknown, { l1Lambda?: number }>("finetune", {
        kind: "mse",
        sae: "nolambda",
        tokens: 2 * 2 * 16,
        batch_size: 2,
        seq_len: 16,
        metrics_every: 1,
        eval_sequences: 0,
      });
      const lambdas = metrics.flatMap((row) => row.l1Lambda ?? []);
      assert(lambdas.length > 0, `no λ in the metrics: ${JSON.stringify(errors)}`);
      // tiny-neox's residual stream after block 1 has an RMS of order 1 per coordinate, so
      // rms/d_in lies far below 0.1; the old fixed default was 5.
      assert(lambdas[0] > 1e-4 && lambdas[0] < 0.1, `λ at the first step: ${lambdas[0]}`);
      console.log(`λ at the first step ${lambdas[0]}`);
    } finally {
      await svc.close();
    }
  },
});
