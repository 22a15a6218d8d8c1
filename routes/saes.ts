// /saes: upload (SAELens layout: cfg.json + sae_weights.safetensors as multipart files), list,
// get, download either file, delete.
import { type Context, Hono } from "hono";
import { eq } from "drizzle-orm";
import { saes } from "../db/schema.ts";
import { loadSae, SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, SaeFormatError } from "../sae/io.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";
import { refuseIfInUse } from "./in_use.ts";
import { spoolMultipart } from "./uploads.ts";
import { openConfined, resolveInside, serviceAccess } from "../lib/confined_fs.ts";
import { z } from "zod";
import { describe, describeById, describeList, named } from "./describe.ts";
import { rowById } from "./lookup.ts";
import { Deleted, Sae, SaeList } from "./responses.ts";

/** The multipart form of an upload, for the document (the route reads it as it streams in). */
const Upload = z.object({
  [SAE_CFG_FILENAME]: z.file().describe(`SAELens cfg.json (also accepted as "cfg")`),
  [SAE_WEIGHTS_FILENAME]: z.file().describe(`the weights (also accepted as "weights")`),
  name: z.string().optional().describe("default: uploaded <kind> SAE"),
});

const download = (summary: string, content: Record<string, z.ZodType>) =>
  describeById(summary, "SAE", { description: "the file, as an attachment", content });

export function saeRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const row = rowById(deps, saes, "SAE");
  const file = (name: string) => async (c: Context) => {
    const r = await row(c.req.param("id")!);
    const { real } = await resolveInside(r.path, name, name, "the SAE's folder");
    const { file, size } = await openConfined(real, serviceAccess(deps.config), {
      maxBytes: Number.MAX_SAFE_INTEGER,
      label: name,
    });
    return c.body(file.readable, 200, {
      "Content-Type": name.endsWith(".json") ? "application/json" : "application/octet-stream",
      "Content-Length": String(size),
      "Content-Disposition": `attachment; filename="${name}"`,
    });
  };
  const app = new Hono()
    .get(
      "/",
      describeList("registered SAEs (uploaded, or trained by a fine-tune)", SaeList),
      async (c) => c.json({ saes: await db.select().from(saes) }),
    )
    .get(
      "/:id",
      describeById("an SAE", "SAE", { content: { "application/json": Sae } }),
      async (c) => c.json(await row(c.req.param("id"))),
    )
    .get(
      `/:id/${SAE_CFG_FILENAME}`,
      download("download its SAELens cfg.json", { "application/json": z.looseObject({}) }),
      file(SAE_CFG_FILENAME),
    )
    .get(
      `/:id/${SAE_WEIGHTS_FILENAME}`,
      download("download its weights (safetensors)", { "application/octet-stream": z.file() }),
      file(SAE_WEIGHTS_FILENAME),
    )
    .delete(
      "/:id",
      describeById(
        "delete it and its files",
        "SAE",
        { description: "deleted", content: { "application/json": Deleted } },
        { 409: "read by a queued or running job" },
      ),
      async (c) => {
        const r = await row(c.req.param("id"));
        await refuseIfInUse(deps, "sae", r.id);
        await db.delete(saes).where(eq(saes.id, r.id));
        await Deno.remove(r.path, { recursive: true }).catch(() => {});
        return c.json({ deleted: r.id });
      },
    )
    .post(
      "/",
      describe({
        summary: "upload an SAE in SAELens layout",
        body: { "multipart/form-data": named(Upload, "SaeUpload") },
        ok: { status: 201, description: "uploaded", content: { "application/json": Sae } },
        errors: {
          400: "a file is missing, or not a loadable SAE",
          413: "the upload is over --max-body-bytes",
          429: "too many uploads at once",
        },
      }),
      (c) => deps.uploads!.run(() => upload(c)),
    );

  async function upload(c: Context): Promise<Response> {
    const id = crypto.randomUUID();
    const dir = `${deps.config.dataDir}/saes/${id}`;
    await Deno.mkdir(dir, { recursive: true });
    let sae, name;
    try {
      const form = await spoolMultipart(c.req.raw, dir, deps.config.maxBodyBytes);
      const cfg = form.files.get(SAE_CFG_FILENAME) ?? form.files.get("cfg"),
        weights = form.files.get(SAE_WEIGHTS_FILENAME) ?? form.files.get("weights");
      if (!cfg || !weights) {
        throw new ApiError(
          400,
          "invalid_upload",
          `send two files: "${SAE_CFG_FILENAME}" and "${SAE_WEIGHTS_FILENAME}"`,
        );
      }
      await Deno.rename(cfg.path, `${dir}/${SAE_CFG_FILENAME}`);
      await Deno.rename(weights.path, `${dir}/${SAE_WEIGHTS_FILENAME}`);
      for (const f of form.files.values()) {
        if (f !== cfg && f !== weights) await Deno.remove(f.path);
      }
      try {
        sae = await loadSae(dir);
      } catch (e) {
        const msg = (e as Error).message;
        throw new ApiError(
          400,
          e instanceof SaeFormatError ? "invalid_sae" : "invalid_upload",
          `not a loadable SAE: ${msg}`,
        );
      }
      name = form.fields.get("name") || `uploaded ${sae.cfg.kind} SAE`;
    } catch (e) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
    const [r] = await db.insert(saes).values({
      id,
      name,
      path: dir,
      architecture: sae.cfg.kind,
      dIn: sae.cfg.dIn,
      dSae: sae.cfg.dSae,
      modelId: sae.cfg.metadata?.model ?? null,
      hook: sae.cfg.metadata?.hookName ?? null,
      cfg: sae.cfg,
    }).returning();
    return c.json(r, 201);
  }
  return app;
}
