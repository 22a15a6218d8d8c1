// Deleting an SAE or a model that a queued or running job reads would fail that job later (after
// a restart it reloads its inputs by id), so such a delete is a 409 naming the jobs.
import type { AppDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

const ACTIVE = new Set(["queued", "running"]);

/** Queued or running jobs whose config names `id` as its `field` (sae or model). */
export async function jobsReading(
  deps: AppDeps,
  field: "sae" | "model",
  id: string,
): Promise<string[]> {
  // Every job, not the newest page: an old queued job counts as much as a new one.
  const all = await deps.runner.store.list({ limit: Number.MAX_SAFE_INTEGER });
  return all.filter((j) =>
    ACTIVE.has(j.state) && (j.config as Record<string, unknown> | null)?.[field] === id
  ).map((j) => j.id);
}

export async function refuseIfInUse(
  deps: AppDeps,
  field: "sae" | "model",
  id: string,
): Promise<void> {
  const ids = await jobsReading(deps, field, id);
  if (ids.length) {
    throw new ApiError(
      409,
      "in_use",
      `${field === "sae" ? "SAE" : "model"} "${id}" is read by ${ids.length} queued or running ` +
        `job(s) (${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", …" : ""}); cancel them or ` +
        `wait until they finish, then delete it`,
      { jobs: ids },
    );
  }
}
