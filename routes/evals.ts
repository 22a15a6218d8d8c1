// /evals: start a CE-eval (a job), list, get its result, follow its events.
import { Hono } from "hono";
import { EvalConfig } from "../eval/config.ts";
import type { JobRecord } from "../jobs/types.ts";
import type { AppDeps } from "./app.ts";
import { notFound } from "./errors.ts";
import { streamJobEvents } from "./sse.ts";
import { jsonBody } from "./validate.ts";
import { requireSae, requireWorker } from "./references.ts";

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
      await requireSae(deps, cfg.sae);
      requireWorker(deps, EVAL_JOB, "eval");
      return c.json(view(await deps.runner.submit(EVAL_JOB, cfg)), 202);
    })
    .get(
      "/",
      async (c) => c.json({ evals: (await deps.runner.store.list({ kind: EVAL_JOB })).map(view) }),
    )
    .get("/:id", async (c) => c.json(view(await job(c.req.param("id")))))
    .get(
      "/:id/events",
      async (c) => streamJobEvents(c, deps.events, (await job(c.req.param("id"))).id),
    );
}
