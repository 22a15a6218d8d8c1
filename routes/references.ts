// Checks of what a job request names, made when it is posted: an unknown model or SAE, a sequence
// longer than the model's context, or no worker for the job is the caller's 4xx/503 now, not a
// failed job later.
import { eq } from "drizzle-orm";
import { models, saes } from "../db/schema.ts";
import type { AppDeps } from "./app.ts";
import { ApiError } from "./errors.ts";

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
