// /evals: start a CE-eval (a job), list, get its result, cancel, follow its events.
import { Hono } from "hono";
import { EvalConfig } from "../eval/config.ts";
import type { JobRecord } from "../jobs/types.ts";
import type { AppDeps } from "./deps.ts";
import { describeList, describeSubmit, named } from "./describe.ts";
import { jobRoutes } from "./job_routes.ts";
import { jsonBody } from "./validate.ts";
import { requireModel, requireRunnable, requireSae } from "./references.ts";
import { Eval, EvalList } from "./responses.ts";

export const EVAL_JOB = "eval";
const RUN = { kind: EVAL_JOB, what: "eval", feasible: "eval" } as const;

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
  return new Hono()
    .post(
      "/",
      describeSubmit(
        "start a CE-eval of an SAE spliced into its model",
        named(EvalConfig, "EvalConfig"),
        Eval,
        "eval",
      ),
      async (c) => {
        const cfg = await jsonBody(c, EvalConfig);
        const model = await requireModel(deps, cfg.model, cfg.seq_len);
        const sae = await requireSae(deps, cfg.sae);
        await requireRunnable(deps, RUN, cfg, model, sae);
        return c.json(view(await deps.runner.submit(EVAL_JOB, cfg)), 202);
      },
    )
    .get(
      "/",
      describeList("evaluations", EvalList),
      async (c) => c.json({ evals: (await deps.runner.store.list({ kind: EVAL_JOB })).map(view) }),
    )
    .route(
      "/",
      jobRoutes(deps, {
        kind: EVAL_JOB,
        what: "evaluation",
        view,
        schema: Eval,
        cancels: "within one batch",
        events: "state, progress, log, result, error",
      }),
    );
}
