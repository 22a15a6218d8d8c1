// Each route's OpenAPI operation, written beside the route from the zod schemas it validates with
// and answers in; routes/openapi.ts collects them from the mounted app (hono-openapi). A route
// without one is missing from the document, which test/routes/openapi_test.ts catches.
import { describeRoute, type DescribeRouteOptions, resolver } from "hono-openapi";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { ErrorBody, EventStream } from "./responses.ts";

type ErrorStatus = 400 | 403 | 404 | 409 | 413 | 429 | 503;

export interface RouteDoc {
  summary: string;
  description?: string;
  /** Open without the token (only /health). */
  public?: boolean;
  path?: z.ZodObject;
  query?: z.ZodObject;
  header?: z.ZodObject;
  /** The request body by media type, e.g. {"application/json": named(X, "X")}. */
  body?: Record<string, z.ZodType>;
  ok: {
    status: 200 | 201 | 202;
    description: string;
    /** The response body by media type. */
    content: Record<string, z.ZodType>;
  };
  /** The 4xx/5xx this route answers besides 401 and 500, each with when. */
  errors?: Partial<Record<ErrorStatus, string>>;
}

const namedCache = new Map<string, { source: z.ZodType; named: z.ZodType }>();

/**
 * `schema` under `id` in components/schemas (a copy; validating with either is the same).
 * Memoised, so building the app again (tests do) does not register the id twice.
 */
export function named<T extends z.ZodType>(schema: T, id: string): T {
  const hit = namedCache.get(id);
  if (hit && hit.source !== schema) {
    throw new Error(`two schemas are documented as "${id}"; give one another name`);
  }
  if (hit) return hit.named as T;
  const copy = schema.meta({ id });
  namedCache.set(id, { source: schema, named: copy });
  return copy as T;
}

type Parameter = NonNullable<DescribeRouteOptions["parameters"]>[number];

function parameters(where: "path" | "query" | "header", shape?: z.ZodObject): Parameter[] {
  return Object.entries(shape?.shape ?? {}).map(([name, field]) => {
    const { $schema: _, description, ...schema } = z.toJSONSchema(field as z.ZodType, {
      io: "input",
    });
    return {
      name,
      in: where,
      required: where === "path" || !(field as z.ZodType).safeParse(undefined).success,
      ...(description ? { description } : {}),
      schema,
    } as Parameter;
  });
}

const content = (media: Record<string, z.ZodType>) =>
  Object.fromEntries(Object.entries(media).map(([m, s]) => [m, { schema: resolver(s) }]));

const errorResponse = (description: string) => ({
  description,
  content: content({ "application/json": ErrorBody }),
});

export function describe(doc: RouteDoc): MiddlewareHandler {
  const errors: Record<string, ReturnType<typeof errorResponse>> = {};
  for (const [status, when] of Object.entries(doc.errors ?? {})) {
    errors[status] = errorResponse(when);
  }
  if (!doc.public) errors[401] = errorResponse("missing or wrong token (when the server has one)");
  errors[500] = errorResponse("internal error (details in the service log)");
  return describeRoute({
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    ...(doc.public ? { security: [] } : {}),
    parameters: [
      ...parameters("path", doc.path),
      ...parameters("query", doc.query),
      ...parameters("header", doc.header),
    ],
    ...(doc.body ? { requestBody: { required: true, content: content(doc.body) } } : {}),
    responses: {
      [doc.ok.status]: { description: doc.ok.description, content: content(doc.ok.content) },
      ...errors,
    },
  });
}

/** The `:id` of every /x/:id route. */
export const IdPath = z.object({ id: z.string().min(1) });

/** Where an event stream resumes: the header, or the query for clients that cannot set one. */
export const ResumeQuery = z.object({
  lastEventId: z.string().regex(/^\d+$/).optional().describe(
    "resume after this event id (as the Last-Event-ID header)",
  ),
});
export const ResumeHeader = z.object({
  "Last-Event-ID": z.string().regex(/^\d+$/).optional().describe("resume after this event id"),
});

/** A list route: GET / answering `schema`. */
export function describeList(summary: string, schema: z.ZodType): MiddlewareHandler {
  return describe({
    summary,
    ok: { status: 200, description: "list", content: { "application/json": schema } },
  });
}

/** A route on one `what` named by `:id`: 404 when there is none. */
export function describeById(
  summary: string,
  what: string,
  ok: { description?: string; content: Record<string, z.ZodType> },
  errors: RouteDoc["errors"] = {},
): MiddlewareHandler {
  return describe({
    summary,
    path: IdPath,
    ok: { status: 200, description: ok.description ?? `the ${what}`, ...ok },
    errors: { 404: `no ${what} with this id`, ...errors },
  });
}

/** POST / that queues a job of `worker` after checking what its JSON `body` names. */
export function describeSubmit(
  summary: string,
  body: z.ZodType,
  answer: z.ZodType,
  worker: string,
): MiddlewareHandler {
  return describe({
    summary,
    body: { "application/json": body },
    ok: { status: 202, description: "queued", content: { "application/json": answer } },
    errors: {
      400: "an invalid field, unknown model/SAE/hook, or a run this server cannot hold",
      409: "the model's file cannot be read",
      503: `this server runs no ${worker} worker`,
    },
  });
}

/** GET /:id/events of a `what`: its job's Server-Sent Events. */
export function describeEvents(what: string, events: string): MiddlewareHandler {
  return describe({
    summary: `its events: ${events}`,
    path: IdPath,
    query: ResumeQuery,
    header: ResumeHeader,
    ok: { status: 200, description: "event stream", content: { "text/event-stream": EventStream } },
    errors: { 404: `no ${what} with this id` },
  });
}
