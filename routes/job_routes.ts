// The routes every job resource shares (/finetunes, /evals): get one, cancel it, follow its events.
import { Hono } from "hono";
import type { z } from "zod";
import type { JobRecord } from "../jobs/types.ts";
import type { AppDeps } from "./deps.ts";
import { describeById, describeEvents } from "./describe.ts";
import { jobOfKind } from "./lookup.ts";
import { streamJobEvents } from "./sse.ts";

export interface JobResource {
  kind: string;
  /** What one is called in messages: "fine-tune", "evaluation". */
  what: string;
  view: (j: JobRecord) => Record<string, unknown>;
  /** The view's schema. */
  schema: z.ZodType;
  /** How soon a cancel takes effect. */
  cancels: string;
  events: string;
}

export function jobRoutes(deps: AppDeps, r: JobResource) {
  const job = jobOfKind(deps, r.kind, r.what);
  const content = { "application/json": r.schema };
  return new Hono()
    .get(
      "/:id",
      describeById(`a ${r.what}, with its result once it succeeded`, r.what, { content }),
      async (c) => c.json(r.view(await job(c.req.param("id")))),
    )
    .post(
      "/:id/cancel",
      describeById(`cancel it (${r.cancels})`, r.what, { content }),
      async (c) => {
        const j = await job(c.req.param("id"));
        return c.json(r.view((await deps.runner.cancel(j.id)) ?? j));
      },
    )
    .get(
      "/:id/events",
      describeEvents(r.what, r.events),
      async (c) => streamJobEvents(c, deps.events, (await job(c.req.param("id"))).id),
    );
}
