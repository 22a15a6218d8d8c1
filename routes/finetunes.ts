// /finetunes: start (kind mse | kl_mse | e2e | kl_only), list, get, cancel, metrics, SSE events.
import { Hono } from "hono";
import { and, asc, eq } from "drizzle-orm";
import { metrics } from "../db/schema.ts";
import { FinetuneConfig } from "../train/config.ts";
import type { AppDeps } from "./app.ts";
import { ApiError, notFound } from "./errors.ts";
import { streamJobEvents } from "./sse.ts";
import { jsonBody } from "./validate.ts";
import { requireHook, requireModel, requireSae, requireWorker } from "./references.ts";
import { requireFeasible } from "./feasible.ts";
import { DEFAULT_HOOK } from "../jobs/finetune_job.ts";
import type { JobRecord } from "../jobs/types.ts";

export const FINETUNE_JOB = "finetune";

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

export function finetuneRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const job = async (id: string) => {
    const j = await deps.runner.store.get(id);
    if (!j || j.kind !== FINETUNE_JOB) throw notFound("fine-tune", id);
    return j;
  };
  return new Hono()
    .post("/", async (c) => {
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
      await requireHook(deps, model, cfg.hook, sae, DEFAULT_HOOK[cfg.model]);
      requireWorker(deps, FINETUNE_JOB, "fine-tune");
      await requireFeasible(deps, "finetune", cfg, model, sae, DEFAULT_HOOK[cfg.model]);
      const j = await deps.runner.submit(FINETUNE_JOB, cfg);
      return c.json(view(j), 202);
    })
    .get("/", async (c) => {
      const list = await deps.runner.store.list({ kind: FINETUNE_JOB, limit: 200 });
      return c.json({ finetunes: list.map(view) });
    })
    .get("/:id", async (c) => c.json(view(await job(c.req.param("id")))))
    .post("/:id/cancel", async (c) => {
      const j = await job(c.req.param("id"));
      return c.json(view((await deps.runner.cancel(j.id)) ?? j));
    })
    .get("/:id/metrics", async (c) => {
      const j = await job(c.req.param("id"));
      const rows = await db.select().from(metrics).where(and(eq(metrics.jobId, j.id))).orderBy(
        asc(metrics.step),
      );
      return c.json({
        metrics: rows.map((r) => ({ step: r.step, tokens: r.tokens, ...(r.values as object) })),
      });
    })
    .get("/:id/events", async (c) => {
      const j = await job(c.req.param("id"));
      return streamJobEvents(c, deps.events, j.id);
    });
}
