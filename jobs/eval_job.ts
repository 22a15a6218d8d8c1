// The "eval" job: CE-eval of a registered SAE on a data set, stored in the evals table.
import { INFERENCE_ONLY } from "../sae/gpu_trainer.ts";
import { evals, saes } from "../db/schema.ts";
import { eq } from "drizzle-orm";
import { ceEval } from "../eval/ce_eval.ts";
import { evalPrefixes } from "../eval/prefix_eval.ts";
import { EvalConfig } from "../eval/config.ts";
import { loadDataset } from "./datasets.ts";
import { asInputError, type FinetuneDeps, JobInputError, loadModelRow } from "./finetune_job.ts";
import { chooseEp, runtimeInfo } from "../lm/session.ts";
import type { JobContext, JobHandler } from "./runner.ts";
import { guardTrainer } from "./gpu_guard.ts";
import { loadCheckedSae } from "./sae_checks.ts";
import { resolveTranscoderHooks } from "../lm/transcoder_graphs.ts";

export function evalHandler(deps: Omit<FinetuneDeps, "metrics">): JobHandler {
  return async (ctx: JobContext) => {
    const cfg = EvalConfig.parse(ctx.job.config);
    const { model, contextLength } = await loadModelRow(deps.database, cfg.model);
    const [row] = await deps.database.db.select().from(saes).where(eq(saes.id, cfg.sae));
    if (!row) throw new JobInputError(`SAE "${cfg.sae}" is not registered`);
    const sae = await loadCheckedSae(row.path, cfg.sae);
    const hook = cfg.hook ?? sae.cfg.metadata?.hookName ?? row.hook;
    if (!hook) throw new JobInputError(`SAE "${cfg.sae}" names no hook; pass "hook"`);
    // A transcoder: the MLP's output is replaced (hook: mlp:<layer> or its input; the output from
    // its metadata).
    const transcoder = sae.cfg.transcoder
      ? asInputError(() =>
        resolveTranscoderHooks(model, hook, undefined, sae.cfg.metadata?.hookNameOut)
      )
      : undefined;
    const data = (await loadDataset(deps.database, cfg.dataset)).batches(
      cfg.split,
      cfg.batch_size,
      cfg.seq_len,
      0,
      false,
    );
    const n = Math.max(1, Math.floor(cfg.sequences / cfg.batch_size));
    const ep = await chooseEp(cfg.ep);
    const runner = guardTrainer(
      await deps.createTrainer(deps.gpu, sae, INFERENCE_ONLY),
      deps.gpu.device,
      { mustMove: false },
    );
    try {
      const options = {
        model,
        hook,
        ep,
        device: ep === "webgpu" ? deps.gpu.device : undefined,
        batches: Array.from({ length: n }, () => data.next()),
        totalBatches: n,
        batchSize: cfg.batch_size,
        seqLen: cfg.seq_len,
        contextLength,
        skipFirstPositions: cfg.skip_first_positions,
        excludeTokens: cfg.exclude_tokens,
        signal: ctx.signal,
        transcoder,
      };
      const evaluation = await ceEval({
        ...options,
        sae: {
          dIn: sae.cfg.dIn,
          reconstruct: async (x, nTok, target) => {
            const f = await runner.forward(x, nTok, true, target);
            return { xhat: f.xhat, l0: f.l0 };
          },
        },
        onProgress: (p) => void ctx.emit("progress", p),
      });
      // Matryoshka SAEs: CE-eval of each nested prefix on the same batches.
      const prefixes = sae.cfg.kind === "matryoshka_batchtopk"
        ? await evalPrefixes({
          sae,
          full: evaluation,
          options,
          createTrainer: (p) => deps.createTrainer(deps.gpu, p, INFERENCE_ONLY),
        })
        : undefined;
      const result = { ...evaluation, ...(prefixes ? { prefixes } : {}), runtime: runtimeInfo(ep) };
      await deps.database.db.insert(evals).values({
        id: ctx.job.id,
        jobId: ctx.job.id,
        saeId: cfg.sae,
        modelId: cfg.model,
        config: cfg,
        result,
      });
      return result;
    } finally {
      runner.release();
    }
  };
}
