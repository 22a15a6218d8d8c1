// /models: list, get, register an ONNX LM by path (only under SPLICE_ROOTS) or upload one, list
// its hook points.
import { type Context, Hono } from "hono";
import { eq } from "drizzle-orm";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { models } from "../db/schema.ts";
import { resolveConfined, serviceAccess } from "../lib/confined_fs.ts";
import { loadLm } from "../lm/load.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { spoolMultipart } from "./uploads.ts";
import { refuseIfInUse } from "./in_use.ts";
import { jsonBody } from "./validate.ts";
import { describe, describeById, describeList, named } from "./describe.ts";
import { rowById } from "./lookup.ts";
import { Deleted, Hooks, Model, ModelList, RegisteredModel } from "./responses.ts";

const Register = z.object({
  name: z.string().min(1).max(200),
  path: z.string().min(1).max(4096).describe("an .onnx file under one of SPLICE_ROOTS"),
  context_length: z.number().int().min(2).optional(),
}).strict();

/** The multipart form of an upload, for the document (the route reads it as it streams in). */
const Upload = z.object({
  model: z.file().describe("a self-contained .onnx"),
  name: Register.shape.name.optional().describe("default: the file's name"),
  context_length: z.string().regex(/^\d+$/).optional().describe("an integer of at least 2"),
});

export function modelRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const row = rowById(deps, models, "model");
  const app = new Hono()
    .get(
      "/",
      describeList("registered models", ModelList),
      async (c) => c.json({ models: await db.select().from(models) }),
    )
    .get(
      "/:id",
      describeById("a model", "model", { content: { "application/json": Model } }),
      async (c) => c.json(await row(c.req.param("id"))),
    )
    .get(
      "/:id/hooks",
      describeById(
        "hook points (residual stream) of a model, with the names a request may use",
        "model",
        { description: "hooks", content: { "application/json": Hooks } },
      ),
      async (c) => {
        const m = await row(c.req.param("id"));
        const { hooks } = await loadLm(m.path, {
          access: serviceAccess(deps.config),
          label: `model ${m.id}`,
        });
        return c.json({
          hooks: hooks.map((h) => ({
            ...h,
            tl_names: h.tlNames,
            spec: h.layer !== undefined ? `resid_post:${h.layer}` : null,
          })),
        });
      },
    )
    .delete(
      "/:id",
      describeById(
        "delete an uploaded or registered model (an uploaded file goes too)",
        "model",
        { description: "deleted", content: { "application/json": Deleted } },
        { 409: "built in, or read by a queued or running job" },
      ),
      async (c) => {
        const m = await row(c.req.param("id"));
        if (m.builtin) {
          throw new ApiError(409, "builtin", `model "${m.id}" is built in and cannot be deleted`);
        }
        await refuseIfInUse(deps, "model", m.id);
        await db.delete(models).where(eq(models.id, m.id));
        // Uploaded models live in their own folder under the data dir; registered ones are the
        // owner's files and stay.
        const uploads = resolve(deps.config.dataDir, "models");
        if (dirname(dirname(resolve(m.path))) === uploads) {
          await Deno.remove(dirname(resolve(m.path)), { recursive: true }).catch(() => {});
        }
        return c.json({ deleted: m.id });
      },
    )
    .post(
      "/",
      describe({
        summary: "register an ONNX LM: JSON for a file under SPLICE_ROOTS, or upload one as a form",
        body: {
          "application/json": named(Register, "ModelRegistration"),
          "multipart/form-data": named(Upload, "ModelUpload"),
        },
        ok: {
          status: 201,
          description: "registered: what was recognised, and the hook points",
          content: { "application/json": RegisteredModel },
        },
        errors: {
          400: "an invalid field, or not a usable ONNX LM",
          403: "registering by path is off (no SPLICE_ROOTS)",
          413: "the upload is over --max-body-bytes",
          429: "too many uploads at once",
        },
      }),
      (c) => {
        // JSON registers a file by path; multipart/form-data uploads one ("model", a self-contained
        // .onnx; "name"; optional "context_length"). An upload holds its gate slot until the model
        // is checked, since reading it back is what takes the memory.
        const multipart = (c.req.header("content-type") ?? "").startsWith("multipart/form-data");
        return multipart ? deps.uploads!.run(() => register(c, true)) : register(c, false);
      },
    );
  return app;
  async function register(c: Context, multipart: boolean): Promise<Response> {
    let name: string,
      path: string,
      contextLength: number | undefined,
      uploadedDir = "",
      shown = "model.onnx";
    if (multipart) {
      uploadedDir = `${deps.config.dataDir}/models/${crypto.randomUUID()}`;
      await Deno.mkdir(uploadedDir, { recursive: true });
      try {
        const form = await spoolMultipart(c.req.raw, uploadedDir, deps.config.maxBodyBytes);
        const file = form.files.get("model");
        if (!file) {
          throw new ApiError(
            400,
            "invalid_upload",
            'send the .onnx file as the form field "model"',
          );
        }
        const fields = Register.omit({ path: true }).safeParse({
          name: form.fields.get("name") ?? file.filename,
          context_length: form.fields.has("context_length")
            ? Number(form.fields.get("context_length"))
            : undefined,
        });
        if (!fields.success) {
          throw new ApiError(400, "invalid_request", fields.error.issues[0].message);
        }
        name = fields.data.name;
        contextLength = fields.data.context_length;
        path = `${uploadedDir}/model.onnx`;
        await Deno.rename(file.path, path);
        // Only the model stays: other parts must not serve as its "external data".
        for (const f of form.files.values()) if (f !== file) await Deno.remove(f.path);
      } catch (e) {
        await Deno.remove(uploadedDir, { recursive: true }).catch(() => {});
        throw e;
      }
    } else {
      const body = await jsonBody(c, Register);
      name = body.name;
      contextLength = body.context_length;
      shown = body.path;
      path = (await resolveConfined(body.path, { roots: deps.config.roots })).real;
    }
    let hooks, signature;
    try {
      ({ hooks, signature } = await loadLm(path, {
        access: uploadedDir ? { roots: [uploadedDir] } : { roots: deps.config.roots },
        label: shown,
      }));
      if (!hooks.length) throw new Error("it has no residual-stream tensors");
    } catch (e) {
      if (uploadedDir) await Deno.remove(uploadedDir, { recursive: true }).catch(() => {});
      throw new ApiError(
        400,
        "invalid_model",
        `${multipart ? "the upload" : `"${shown}"`} is not a usable ONNX LM: ${
          (e as Error).message
        }`,
      );
    }
    const id = crypto.randomUUID();
    const info = {
      hooks: hooks.length,
      contextLength: contextLength ?? null,
      signature: signature.recognised,
    };
    const [r] = await db.insert(models).values({ id, name, path, info }).returning();
    // What was recognised, and the hook points with the names a request may use.
    return c.json({
      ...r,
      signature,
      hooks: hooks.map((h) => ({
        name: h.name,
        dims: h.dims,
        tl_names: h.tlNames,
        spec: h.layer !== undefined ? `resid_post:${h.layer}` : null,
      })),
    }, 201);
  }
}
