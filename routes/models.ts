// /models: list, get, register an ONNX LM by path (only under SPLICE_ROOTS) or upload one, list
// its hook points.
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
      // JSON registers a file by path; multipart/form-data uploads one ("model", a self-contained
      // .onnx; "name"; optional "context_length").
      const multipart = (c.req.header("content-type") ?? "").startsWith("multipart/form-data");
      let name: string, path: string, contextLength: number | undefined, uploadedDir = "";
      if (multipart) {
        let form: Record<string, unknown>;
        try {
          form = await c.req.parseBody();
        } catch (e) {
          throw new ApiError(400, "invalid_upload", `bad multipart body: ${(e as Error).message}`);
        }
        const file = form.model;
        if (!(file instanceof File)) {
          throw new ApiError(
            400,
            "invalid_upload",
            'send the .onnx file as the form field "model"',
          );
        }
        const fields = Register.omit({ path: true }).safeParse({
          name: typeof form.name === "string" ? form.name : file.name,
          context_length: form.context_length === undefined
            ? undefined
            : Number(form.context_length),
        });
        if (!fields.success) {
          throw new ApiError(400, "invalid_request", fields.error.issues[0].message);
        }
        name = fields.data.name;
        contextLength = fields.data.context_length;
        uploadedDir = `${deps.config.dataDir}/models/${crypto.randomUUID()}`;
        await Deno.mkdir(uploadedDir, { recursive: true });
        path = `${uploadedDir}/model.onnx`;
        await Deno.writeFile(path, new Uint8Array(await file.arrayBuffer()));
      } else {
        const body = await jsonBody(c, Register);
        name = body.name;
        contextLength = body.context_length;
        path = await underRoots(body.path, deps.config.roots);
      }
      let hooks;
      try {
        hooks = listHookPoints(await loadModel(path));
        if (!hooks.length) throw new Error("it has no residual-stream tensors");
      } catch (e) {
        if (uploadedDir) await Deno.remove(uploadedDir, { recursive: true }).catch(() => {});
        throw new ApiError(
          400,
          "invalid_model",
          `${multipart ? "the upload" : `"${path}"`} is not a usable ONNX LM: ${
            (e as Error).message
          }`,
        );
      }
      const id = crypto.randomUUID();
      const info = { hooks: hooks.length, contextLength: contextLength ?? null };
      const [r] = await db.insert(models).values({ id, name, path, info }).returning();
      return c.json(r, 201);
    });
}
