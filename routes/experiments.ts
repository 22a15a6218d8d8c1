// /experiments: start one (a job of several arms), list, get its results table, download its SVG
// plots, follow its events, cancel.
import { Hono } from "hono";
import { desc } from "drizzle-orm";
import { z } from "zod";
import { experiments } from "../db/schema.ts";
import type { ExperimentResult } from "../jobs/experiment_job.ts";
import type { JobRecord } from "../jobs/types.ts";
import { expandArms, ExperimentRequest } from "../train/experiment_config.ts";
import { submitKindsFrontier } from "./kinds_frontier_submit.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError, notFound } from "./errors.ts";
import { streamJobEvents } from "./sse.ts";
import { jsonBody } from "./validate.ts";
import { requireModel, requireSae, requireWorker } from "./references.ts";
import { requireFeasible } from "./feasible.ts";
import {
  describe,
  describeById,
  describeEvents,
  describeList,
  describeSubmit,
  IdPath,
  named,
} from "./describe.ts";
import { rowById } from "./lookup.ts";
import { Experiment, ExperimentList } from "./responses.ts";

export const EXPERIMENT_JOB = "experiment";

type Row = typeof experiments.$inferSelect;

function view(row: Row, job: JobRecord | null) {
  const result = row.result as Partial<ExperimentResult> | null;
  return {
    id: row.id,
    name: row.name,
    state: job?.state ?? "unknown",
    error: job?.error ?? null,
    config: row.config,
    table: result?.table ?? [],
    arms: (result?.arms ?? []).map((a) => ({
      name: a.name,
      type: a.type,
      final: a.final,
      curve: a.curve,
      stability: a.stability,
    })),
    createdAt: row.createdAt,
    links: {
      self: `/experiments/${row.id}`,
      events: `/experiments/${row.id}/events`,
      plots: Object.keys(result?.plots ?? {}).map((p) => `/experiments/${row.id}/plots/${p}.svg`),
    },
  };
}

const json = { content: { "application/json": Experiment } };

export function experimentRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const find = rowById(deps, experiments, "experiment");
  return new Hono()
    .post(
      "/",
      describeSubmit(
        "start an experiment: arms from one SAE on identical data, a sweep, or a preset",
        named(ExperimentRequest, "ExperimentRequest"),
        Experiment,
        "experiment",
      ),
      async (c) => {
        const body = await jsonBody(c, ExperimentRequest);
        if (body.preset === "kinds_frontier") {
          const job = await submitKindsFrontier(deps, body, EXPERIMENT_JOB);
          return c.json(view(await find(job.id), job), 202);
        }
        const cfg = body;
        const model = await requireModel(deps, cfg.model, cfg.seq_len);
        const sae = await requireSae(deps, cfg.sae);
        const arms = expandArms(cfg);
        if (sae.architecture !== "topk" && arms.some((a) => a.k !== undefined)) {
          throw new ApiError(400, "invalid_request", "k applies to TopK SAEs only", [
            { path: "arms", message: `SAE "${cfg.sae}" is ${sae.architecture}` },
          ]);
        }
        // Adapters before the hook train through the SAE's input gradient, which TopK trainers give.
        const allBlocks = arms.findIndex((a) => a.type === "lm_lora" && a.layers === "all");
        if (allBlocks >= 0 && sae.architecture !== "topk") {
          throw new ApiError(
            400,
            "invalid_request",
            `LoRA on LM layers before the hook needs a TopK SAE; SAE "${cfg.sae}" is ` +
              `${sae.architecture}` +
              (["relu", "jumprelu"].includes(sae.architecture)
                ? " (such adapters could lower the loss by changing how many latents fire)"
                : ""),
            [{ path: `arms.${allBlocks}.layers`, message: 'use "after_hook"' }],
          );
        }
        requireWorker(deps, EXPERIMENT_JOB, "experiment");
        await requireFeasible(deps, "experiment", cfg, model, sae);
        const job = await deps.runner.submit(EXPERIMENT_JOB, cfg);
        await db.insert(experiments).values({
          id: job.id,
          name: cfg.name,
          jobId: job.id,
          config: cfg,
        }).onConflictDoNothing();
        return c.json(view(await find(job.id), job), 202);
      },
    )
    .get(
      "/",
      describeList("experiments, newest first (at most 200)", ExperimentList),
      async (c) => {
        const rows = await db.select().from(experiments).orderBy(desc(experiments.createdAt))
          .limit(200);
        const out = [];
        for (const r of rows) {
          out.push(view(r, r.jobId ? await deps.runner.store.get(r.jobId) : null));
        }
        return c.json({ experiments: out });
      },
    )
    .get(
      "/:id",
      describeById(
        "an experiment: state, results table, curves, weight stability, plot links",
        "experiment",
        json,
      ),
      async (c) => {
        const row = await find(c.req.param("id"));
        return c.json(view(row, row.jobId ? await deps.runner.store.get(row.jobId) : null));
      },
    )
    .get(
      "/:id/plots/:name",
      describe({
        summary: "a plot as SVG (the names are in links.plots)",
        path: IdPath.extend({
          name: z.string().min(1).describe("a plot's name, with or without .svg"),
        }),
        ok: { status: 200, description: "SVG", content: { "image/svg+xml": z.string() } },
        errors: { 404: "no experiment with this id, or no such plot (yet)" },
      }),
      async (c) => {
        const row = await find(c.req.param("id"));
        const name = c.req.param("name").replace(/\.svg$/, "");
        const svg = (row.result as Partial<ExperimentResult> | null)?.plots?.[name];
        if (!svg) throw notFound("plot", name);
        return c.body(svg, 200, { "content-type": "image/svg+xml; charset=utf-8" });
      },
    )
    .get(
      "/:id/events",
      describeEvents("experiment", "state, progress, log, result, error"),
      async (c) => {
        const row = await find(c.req.param("id"));
        return streamJobEvents(c, deps.events, row.jobId ?? row.id);
      },
    )
    .post(
      "/:id/cancel",
      describeById("cancel it", "experiment", json),
      async (c) => {
        const row = await find(c.req.param("id"));
        const job = row.jobId ? await deps.runner.cancel(row.jobId) : null;
        return c.json(view(row, job));
      },
    );
}
