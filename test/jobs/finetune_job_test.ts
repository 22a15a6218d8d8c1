// Every SAE kind trains from scratch through the finetune job with the GPU trainers (MSE phase,
// then kl_mse), is evaluated, and is written in SAELens layout with its threshold where it has one.
import { assert, assertEquals } from "@std/assert";
import { loadSae } from "../../sae/io.ts";
import { loadDataset } from "../../jobs/datasets.ts";
import { decodeModel, encodeModel } from "../../lm/onnx.ts";
import { createSession, ort } from "../../lm/session.ts";
import { prefix } from "../../lm/surgery.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
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

Deno.test({
  name: "normalize_activations: trained on s·x, saved folded, the SAE reads raw activations",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      const job = await svc.runner.submit("finetune", {
        kind: "mse",
        tokens: 6 * 2 * 16,
        batch_size: 2,
        seq_len: 16,
        init: { kind: "topk", d_sae: 64, k: 4 },
        normalize_activations: "expected_average_only_in",
        shuffle_buffer_tokens: 64,
        eval_sequences: 2,
      });
      type Result = { sae: string; activationScale: number; eval: { recon: { fvu: number } } };
      let result: Result | null = null;
      for await (const e of svc.events.subscribe(job.id)) {
        if (e.type === "result") result = e.data as Result;
      }
      const r = result as Result | null;
      assert(r && r.activationScale > 0 && r.activationScale !== 1, `scale ${r?.activationScale}`);
      // The saved (folded) SAE on raw activations reproduces the job's own evaluation (which ran
      // the unfolded SAE on s·x and divided by s).
      const sae = await loadSae(`${svc.dataDir}/saes/${r.sae}`);
      const model = decodeModel(
        await Deno.readFile(new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
      );
      const ids = (await loadDataset(svc.database, "brown")).batches("validation", 2, 16, 0, false)
        .next();
      const s = await createSession(encodeModel(prefix(model, "/blocks.1/Add_2_output_0")), {
        ep: "wasm",
      });
      const x = (await s.run({ [s.inputNames[0]]: new ort.Tensor("int64", ids, [2, 16]) }))[
        s.outputNames[0]
      ].data as Float32Array;
      await s.release();
      const t = new TopKGpuTrainer(svc.gpu, sae, {
        weightDecay: 0,
        gradClip: 1,
        decoderConstraint: false,
      });
      const xhat = (await t.forward(x, 32, true)).xhat;
      t.release();
      const mu = new Float64Array(128);
      for (let e = 0; e < x.length; e++) mu[e % 128] += x[e] / 32;
      let num = 0, den = 0;
      for (let e = 0; e < x.length; e++) {
        num += (x[e] - xhat[e]) ** 2;
        den += (x[e] - mu[e % 128]) ** 2;
      }
      const fvu = num / den;
      assert(
        Math.abs(fvu - r.eval.recon.fvu) / r.eval.recon.fvu < 1e-3,
        `${fvu} vs ${r.eval.recon.fvu}`,
      );
    } finally {
      await svc.close();
    }
  },
});
