// Submitting the kinds_frontier preset of POST /experiments: its runs train SAEs from scratch, so
// what is checked now is what a from-scratch finetune's route checks (model, hook, feasibility of
// the widest run), not a starting SAE.
import { experiments } from "../db/schema.ts";
import { planKindsFrontier } from "../experiments/kinds_frontier.ts";
import { DEFAULT_HOOK } from "../jobs/finetune_job.ts";
import { FinetuneConfig } from "../train/config.ts";
import type { KindsFrontierPreset } from "../train/experiment_config.ts";
import type { AppDeps } from "./deps.ts";
import { requireFeasible } from "./feasible.ts";
import { requireHook, requireModel, requireWorker } from "./references.ts";

export async function submitKindsFrontier(
  deps: AppDeps,
  cfg: KindsFrontierPreset,
  jobKind: string,
) {
  const model = await requireModel(deps, cfg.model, cfg.seq_len);
  await requireHook(deps, model, cfg.hook, undefined, DEFAULT_HOOK[cfg.model]);
  requireWorker(deps, jobKind, "experiment");
  // Every run has the same shapes but its kind and sparsity; the largest k is the most demanding.
  const runs = planKindsFrontier(cfg);
  const widest = runs.reduce((a, r) => (r.sparsity > a.sparsity ? r : a), runs[0]);
  await requireFeasible(
    deps,
    "finetune",
    FinetuneConfig.parse(widest.job),
    model,
    undefined,
    DEFAULT_HOOK[cfg.model],
  );
  const job = await deps.runner.submit(jobKind, cfg);
  await deps.database.db.insert(experiments).values({
    id: job.id,
    name: cfg.name,
    jobId: job.id,
    config: cfg,
  }).onConflictDoNothing();
  return job;
}
