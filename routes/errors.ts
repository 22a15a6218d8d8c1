// Every error leaves the service as {error: {code, message, details}} with a fitting status.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { FileAccessError } from "../lib/confined_fs.ts";

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: string) =>
  new ApiError(404, "not_found", `${what} "${id}" does not exist`);

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, details: details ?? null } };
}

export function validationDetails(err: z.ZodError) {
  return err.issues.map((i) => ({ path: i.path.join(".") || "(body)", message: i.message }));
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) {
    return c.json(errorBody(err.code, err.message, err.details), err.status);
  }
  if (err instanceof FileAccessError) {
    // One status for "outside the roots" and "does not exist", so the status leaks nothing either.
    return c.json(errorBody(err.code, err.message), err.code === "paths_disabled" ? 403 : 400);
  }
  if (err instanceof z.ZodError) {
    const details = validationDetails(err);
    return c.json(
      errorBody(
        "invalid_request",
        `invalid request: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
        details,
      ),
      400,
    );
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code = status === 401
      ? "unauthorized"
      : status === 413
      ? "payload_too_large"
      : "http_error";
    return c.json(errorBody(code, err.message || `HTTP ${status}`), status);
  }
  console.error(`splice: unhandled error on ${c.req.method} ${c.req.path}:`, err);
  // File system errors carry absolute paths of this host: they stay in the log.
  const fsError = Object.values(Deno.errors).some((E) => err instanceof E);
  const message = fsError
    ? `a file operation failed (${err.name}); see the service log`
    : err.message;
  return c.json(errorBody("internal", `internal error: ${message}`), 500);
}
