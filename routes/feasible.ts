// The submit-time feasibility check of a job request against this server: its GPU adapter's
// limits, its host memory, and the model's vocabulary, width and size (jobs/feasibility.ts). A
// job that could never run is a 400 naming the setting and the limit.
import type { models, saes } from "../db/schema.ts";
import { checkFeasible, type FeasibleKind } from "../jobs/feasibility.ts";
import { modelFacts } from "../jobs/model_facts.ts";
import { chooseEp, type EpRequest } from "../lm/session.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

export async function requireFeasible(
  deps: AppDeps,
  kind: FeasibleKind,
  cfg: Record<string, unknown> & { ep: EpRequest; hook?: string },
  model: typeof models.$inferSelect,
  sae?: typeof saes.$inferSelect,
  defaultHook?: string,
): Promise<void> {
  let facts;
  try {
    facts = await modelFacts(model.path, cfg.hook ?? sae?.hook ?? defaultHook);
  } catch (e) {
    // The path is the operator's business, not the caller's: name the model and the failure.
    throw new ApiError(
      409,
      "model_unreadable",
      `model "${model.id}"'s file cannot be read (${(e as Error).name}); register it again`,
    );
  }
  const info = (model.info ?? {}) as { vocab?: number };
  const dModel = facts.dModel ?? facts.hookWidth ?? sae?.dIn ?? 0;
  const problem = checkFeasible(kind, cfg, {
    gpuLimits: deps.gpu.info.limits,
    hostMemoryBytes: Deno.systemMemoryInfo().total,
    vocab: info.vocab ?? facts.vocab ?? 0,
    dModel,
    dIn: facts.hookWidth ?? undefined,
    modelBytes: facts.modelBytes,
    ep: await chooseEp(cfg.ep),
    sae: sae ? { kind: sae.architecture, dIn: sae.dIn, dSae: sae.dSae } : undefined,
  });
  if (problem) {
    throw new ApiError(400, "infeasible", problem.message, [
      { path: problem.field, message: `limit ${problem.limit}` },
    ]);
  }
}
