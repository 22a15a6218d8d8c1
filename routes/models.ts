// /models: list, get, register an ONNX LM by path (only under SPLICE_ROOTS), list its hook points.
import { Hono } from "hono";
import { eq } from "drizzle-orm";
import { z } from "zod";
import { models } from "../db/schema.ts";
import { listHookPoints } from "../lm/hooks.ts";
import { loadModel } from "../lm/onnx.ts";
import type { AppDeps } from "./app.ts";
import { ApiError, notFound } from "./errors.ts";
import { jsonBody } from "./validate.ts";

const Register = z.object({
  name: z.string().min(1).max(200),
  path: z.string().min(1).max(4096).describe("an .onnx file under one of SPLICE_ROOTS"),
  context_length: z.number().int().min(2).optional(),
}).strict();

/** The real path of `path` if it lies under one of `roots` (symlinks resolved), else an error. */
export async function underRoots(path: string, roots: string[]): Promise<string> {
  if (!roots.length) {
    throw new ApiError(
      403,
      "forbidden",
      "registering files by path is off: start the service with SPLICE_ROOTS",
    );
  }
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch {
    throw new ApiError(400, "not_found", `no file at "${path}"`);
  }
  for (const root of roots) {
    const r = await Deno.realPath(root).catch(() => null);
    if (r && (real === r || real.startsWith(r.endsWith("/") ? r : `${r}/`))) return real;
  }
  throw new ApiError(403, "forbidden", `"${path}" is outside the allowed roots (SPLICE_ROOTS)`);
}

export function modelRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const row = async (id: string) => {
    const [m] = await db.select().from(models).where(eq(models.id, id));
    if (!m) throw notFound("model", id);
    return m;
  };
  return new Hono()
    .get("/", async (c) => c.json({ models: await db.select().from(models) }))
    .get("/:id", async (c) => c.json(await row(c.req.param("id"))))
    .get("/:id/hooks", async (c) => {
      const m = await row(c.req.param("id"));
      const hooks = listHookPoints(await loadModel(m.path));
      return c.json({
        hooks: hooks.map((h) => ({
          ...h,
          spec: h.layer !== undefined ? `resid_post:${h.layer}` : null,
        })),
      });
    })
    .post("/", async (c) => {
      const body = await jsonBody(c, Register);
      const path = await underRoots(body.path, deps.config.roots);
      let hooks;
      try {
        hooks = listHookPoints(await loadModel(path));
      } catch (e) {
        throw new ApiError(
          400,
          "invalid_model",
          `"${body.path}" is not a usable ONNX LM: ${(e as Error).message}`,
        );
      }
      if (!hooks.length) {
        throw new ApiError(400, "invalid_model", `"${body.path}" has no residual-stream tensors`);
      }
      const id = crypto.randomUUID();
      const info = { hooks: hooks.length, contextLength: body.context_length ?? null };
      const [r] = await db.insert(models).values({ id, name: body.name, path, info }).returning();
      return c.json(r, 201);
    });
}
