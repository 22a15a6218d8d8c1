// Request bodies and parameters through zod: a bad field answers 400 naming its path.
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError, validationDetails } from "./errors.ts";

export async function jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  let raw: unknown;
  try {
    const text = await c.req.text();
    raw = text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    throw new ApiError(400, "invalid_json", `the body is not valid JSON: ${(e as Error).message}`);
  }
  return parse(schema, raw);
}

export function parse<T extends z.ZodType>(schema: T, raw: unknown): z.infer<T> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const details = validationDetails(r.error);
    throw new ApiError(
      400,
      "invalid_request",
      `invalid request: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
      details,
    );
  }
  return r.data;
}
