// Checks of what a job request names, made when it is posted: an unknown model or SAE, a sequence
// longer than the model's context, or no worker for the job is the caller's 4xx/503 now, not a
// failed job later.
import { eq } from "drizzle-orm";
import { models, saes } from "../db/schema.ts";
import { resolveTranscoderHooks } from "../lm/transcoder_graphs.ts";
import { resolveHook } from "../lm/hooks.ts";
import { loadLm } from "../lm/load.ts";
import { serviceAccess } from "../lib/confined_fs.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { requireFeasible } from "./feasible.ts";
import type { FeasibleKind } from "../jobs/feasibility.ts";
import type { EpRequest } from "../lm/session.ts";

export async function requireModel(deps: AppDeps, id: string, seqLen: number) {
  const [model] = await deps.database.db.select().from(models).where(eq(models.id, id));
  if (!model) {
    throw new ApiError(400, "unknown_model", `model "${id}" is not registered (GET /models)`);
  }
  const ctx = (model.info as { contextLength?: number } | null)?.contextLength;
  if (ctx && seqLen > ctx) {
    throw new ApiError(
      400,
      "invalid_request",
      `seq_len ${seqLen} is longer than model "${id}"'s context of ${ctx}`,
      [{ path: "seq_len", message: `at most ${ctx}` }],
    );
  }
  return model;
}

export async function requireSae(deps: AppDeps, id: string) {
  const [sae] = await deps.database.db.select().from(saes).where(eq(saes.id, id));
  if (!sae) throw new ApiError(400, "unknown_sae", `SAE "${id}" is not registered (GET /saes)`);
  return sae;
}

export function requireWorker(deps: AppDeps, kind: string, what: string): void {
  if (!deps.runner.kinds.includes(kind)) {
    throw new ApiError(503, "unavailable", `this server runs no ${what} worker`);
  }
}

type HookCheck = { name: string; width: number | null } | { error: string };
const hookCache = new Map<string, HookCheck>();

/**
 * The hook a request will splice at (its own `hook`, else the SAE's, e.g. a SAELens TransformerLens
 * name such as blocks.8.hook_resid_post, else `fallback`), resolved on the model as the job will
 * load it: a spec that does not resolve, or an SAE whose d_in is not the hook's width, is a 400
 * now. Results are cached per model file version and spec.
 */
export async function requireHook(
  deps: AppDeps,
  model: typeof models.$inferSelect,
  hook: string | undefined,
  sae?: typeof saes.$inferSelect,
  fallback?: string,
): Promise<void> {
  const spec = hook ?? sae?.hook ?? fallback;
  if (!spec) return; // the job reports a missing hook with its own message
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(model.path);
  } catch {
    return; // an unreadable file is requireFeasible's 409
  }
  const key = [model.path, st.size, st.mtime?.getTime(), spec].join("\u0000");
  let hit = hookCache.get(key);
  if (!hit) {
    try {
      const { model: lm, hooks } = await loadLm(model.path, {
        access: serviceAccess(deps.config),
        label: `model "${model.id}"`,
      });
      try {
        // A transcoder's MLP (mlp:<L>, or its input by TransformerLens name): its block's output
        // has the width it reads.
        const tl = /^blocks\.(\d+)\.ln2\.hook_normalized$/.exec(spec);
        const name = /^mlp:\d+$/.test(spec) || tl
          ? resolveTranscoderHooks(lm, tl ? `mlp:${tl[1]}` : spec, undefined).post
          : resolveHook(lm, spec);
        const d = Number(hooks.find((h) => h.name === name)?.dims.at(-1));
        hit = { name, width: Number.isInteger(d) ? d : null };
      } catch (e) {
        hit = { error: (e as Error).message };
      }
    } catch {
      return; // the model's own failure is reported by requireFeasible or the job
    }
    if (hookCache.size >= 64) hookCache.clear();
    hookCache.set(key, hit);
  }
  const from = hook ? "hook" : sae?.hook ? `SAE "${sae.id}"'s hook` : "the default hook";
  if ("error" in hit) {
    throw new ApiError(400, "unknown_hook", `${from} on model "${model.id}": ${hit.error}`, [
      { path: "hook", message: "a tensor name, resid_post:<layer> or blocks.<L>.hook_resid_post" },
    ]);
  }
  if (sae && hit.width !== null && sae.dIn !== hit.width) {
    throw new ApiError(
      400,
      "sae_model_mismatch",
      `SAE "${sae.id}" reads ${sae.dIn}-wide activations but ${from} "${spec}" on model ` +
        `"${model.id}" (${hit.name}) is ${hit.width} wide`,
      [{ path: "sae", message: `d_in must be ${hit.width}` }],
    );
  }
}

/**
 * The checks a job request passes once its model and SAE are found: the hook resolves (and fits
 * the SAE), a worker runs `job.kind`, and the run fits this server.
 */
export async function requireRunnable(
  deps: AppDeps,
  job: { kind: string; what: string; feasible: FeasibleKind },
  cfg: Record<string, unknown> & { ep: EpRequest; hook?: string },
  model: typeof models.$inferSelect,
  sae?: typeof saes.$inferSelect,
  defaultHook?: string,
): Promise<void> {
  await requireHook(deps, model, cfg.hook, sae, defaultHook);
  requireWorker(deps, job.kind, job.what);
  await requireFeasible(deps, job.feasible, cfg, model, sae, defaultHook);
}
