// /finetunes: start (kind mse | kl_mse | e2e | kl_only), list, get, cancel, metrics, SSE events.
import { Hono } from "hono";
import { asc, eq } from "drizzle-orm";
import { metrics } from "../db/schema.ts";
import { FinetuneConfig } from "../train/config.ts";
import { chooseSaeDevice, CPU_SAE_KINDS } from "../sae/sae_device.ts";
import { runtimeStatus } from "../lm/session.ts";
import type { SaeConfig } from "../sae/types.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { jsonBody } from "./validate.ts";
import { requireModel, requireRunnable, requireSae } from "./references.ts";
import { DEFAULT_HOOK } from "../jobs/finetune_job.ts";
import type { JobRecord } from "../jobs/types.ts";
import { describeById, describeList, describeSubmit, named } from "./describe.ts";
import { jobRoutes } from "./job_routes.ts";
import { jobOfKind } from "./lookup.ts";
import { Finetune, FinetuneList, Metrics } from "./responses.ts";

export const FINETUNE_JOB = "finetune";
const RUN = { kind: FINETUNE_JOB, what: "fine-tune", feasible: "finetune" } as const;

function view(j: JobRecord) {
  return {
    id: j.id,
    state: j.state,
    config: j.config,
    result: j.result,
    error: j.error,
    createdAt: j.createdAt,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
    links: {
      self: `/finetunes/${j.id}`,
      events: `/finetunes/${j.id}/events`,
      metrics: `/finetunes/${j.id}/metrics`,
      sae: j.state === "succeeded" ? `/saes/${j.id}` : null,
    },
  };
}

/**
 * sae_device "cpu" for an SAE the CPU trainer does not train, or where the native runtime did not
 * load, is a 400 naming what it needs.
 */
async function requireSaeDevice(
  deps: AppDeps,
  cfg: FinetuneConfig,
  registered: SaeConfig | undefined,
): Promise<void> {
  if (cfg.sae_device !== "cpu") return;
  const kind = registered ?? {
    kind: cfg.init?.kind ?? "topk",
    transcoder: cfg.init && cfg.init.transcoder !== "none" ? { skip: false } : undefined,
  };
  try {
    chooseSaeDevice("cpu", deps.gpu.info, kind, (await runtimeStatus()).eps.cpu);
  } catch (e) {
    throw new ApiError(400, "invalid_request", (e as Error).message, [
      { path: "sae_device", message: `"cpu" trains ${CPU_SAE_KINDS} on the native runtime` },
    ]);
  }
}

export function finetuneRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const job = jobOfKind(deps, FINETUNE_JOB, "fine-tune");
  return new Hono()
    .post(
      "/",
      describeSubmit(
        "start a fine-tune (mse, kl_mse, e2e, kl_only); links to events, metrics and the SAE",
        named(FinetuneConfig, "FinetuneConfig"),
        Finetune,
        "fine-tune",
      ),
      async (c) => {
        const cfg = await jsonBody(c, FinetuneConfig);
        const model = await requireModel(deps, cfg.model, cfg.seq_len);
        if (cfg.skip_first_positions >= cfg.seq_len) {
          throw new ApiError(
            400,
            "invalid_request",
            `skip_first_positions ${cfg.skip_first_positions} leaves no position of seq_len ${cfg.seq_len}`,
            [{ path: "skip_first_positions", message: `below ${cfg.seq_len}` }],
          );
        }
        const sae = cfg.sae ? await requireSae(deps, cfg.sae) : undefined;
        await requireSaeDevice(deps, cfg, sae?.cfg as SaeConfig | undefined);
        await requireRunnable(deps, RUN, cfg, model, sae, DEFAULT_HOOK[cfg.model]);
        const j = await deps.runner.submit(FINETUNE_JOB, cfg);
        return c.json(view(j), 202);
      },
    )
    .get(
      "/",
      describeList("fine-tunes, newest first (at most 200)", FinetuneList),
      async (c) => {
        const list = await deps.runner.store.list({ kind: FINETUNE_JOB, limit: 200 });
        return c.json({ finetunes: list.map(view) });
      },
    )
    .get(
      "/:id/metrics",
      describeById("its metrics rows, by step", "fine-tune", {
        description: "rows",
        content: { "application/json": Metrics },
      }),
      async (c) => {
        const j = await job(c.req.param("id"));
        const rows = await db.select().from(metrics).where(eq(metrics.jobId, j.id))
          .orderBy(asc(metrics.step));
        return c.json({
          metrics: rows.map((r) => ({ step: r.step, tokens: r.tokens, ...(r.values as object) })),
        });
      },
    )
    .route(
      "/",
      jobRoutes(deps, {
        kind: FINETUNE_JOB,
        what: "fine-tune",
        view,
        schema: Finetune,
        cancels: "within one step; the last checkpoint is kept",
        events: "state, progress, metrics, log, result, error",
      }),
    );
}
