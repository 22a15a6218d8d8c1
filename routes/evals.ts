// /evals: start a CE-eval (a job), list, get its result, cancel, follow its events.
import { Hono } from "hono";
import { EvalConfig } from "../eval/config.ts";
import type { JobRecord } from "../jobs/types.ts";
import type { AppDeps } from "./app.ts";
import { notFound } from "./errors.ts";
import { streamJobEvents } from "./sse.ts";
import { jsonBody } from "./validate.ts";
import { requireHook, requireModel, requireSae, requireWorker } from "./references.ts";
import { requireFeasible } from "./feasible.ts";

export const EVAL_JOB = "eval";

const view = (j: JobRecord) => ({
  id: j.id,
  state: j.state,
  config: j.config,
  result: j.result,
  error: j.error,
  createdAt: j.createdAt,
  finishedAt: j.finishedAt,
  links: { self: `/evals/${j.id}`, events: `/evals/${j.id}/events` },
});

export function evalRoutes(deps: AppDeps) {
  const job = async (id: string) => {
    const j = await deps.runner.store.get(id);
    if (!j || j.kind !== EVAL_JOB) throw notFound("evaluation", id);
    return j;
  };
  return new Hono()
    .post("/", async (c) => {
      const cfg = await jsonBody(c, EvalConfig);
      const model = await requireModel(deps, cfg.model, cfg.seq_len);
      const sae = await requireSae(deps, cfg.sae);
      await requireHook(deps, model, cfg.hook, sae);
      requireWorker(deps, EVAL_JOB, "eval");
      await requireFeasible(deps, "eval", cfg, model, sae);
      return c.json(view(await deps.runner.submit(EVAL_JOB, cfg)), 202);
    })
    .get(
      "/",
      async (c) => c.json({ evals: (await deps.runner.store.list({ kind: EVAL_JOB })).map(view) }),
    )
    .get("/:id", async (c) => c.json(view(await job(c.req.param("id")))))
    .post("/:id/cancel", async (c) => {
      const j = await job(c.req.param("id"));
      return c.json(view((await deps.runner.cancel(j.id)) ?? j));
    })
    .get(
      "/:id/events",
      async (c) => streamJobEvents(c, deps.events, (await job(c.req.param("id"))).id),
    );
}
