// Every SAE kind trains from scratch through the finetune job with the GPU trainers (MSE phase,
// then kl_mse), is evaluated, and is written in SAELens layout with its threshold where it has one.
import { assert, assertEquals } from "@std/assert";
import { loadSae } from "../../sae/io.ts";
import { startTestService } from "../util/service.ts";

Deno.test({
  name: "relu, topk, batchtopk and jumprelu SAEs train, evaluate and save through the job",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    const { runner, events, dataDir } = svc;
    try {
      for (const kind of ["relu", "topk", "batchtopk", "jumprelu"] as const) {
        const job = await runner.submit("finetune", {
          kind: "kl_mse",
          tokens: 4 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          finetune_fraction: 0.5,
          pretrain_lr: 1e-3,
          init: { kind, d_sae: 64, k: 4, l1_coefficient: 0.01 },
          metrics_every: 1,
          eval_sequences: 2,
        });
        type Result = { sae: string; eval: { ceSpliced: number } };
        let result: Result | null = null;
        const errors: unknown[] = [];
        for await (const e of events.subscribe(job.id)) {
          if (e.type === "result") result = e.data as Result;
          if (e.type === "error") errors.push(e.data);
        }
        assertEquals(errors, [], kind);
        const r = result as Result | null;
        assert(r && Number.isFinite(r.eval.ceSpliced), `${kind}: evaluated`);
        const sae = await loadSae(`${dataDir}/saes/${r.sae}`);
        assertEquals(sae.cfg.kind, kind);
        if (kind === "batchtopk") assert(sae.weights.threshold![0] > 0, "threshold was set");
        if (kind === "jumprelu") assertEquals(sae.weights.threshold!.length, 64);
      }
    } finally {
      await svc.close();
    }
  },
});
