// /saes: upload (SAELens layout: cfg.json + sae_weights.safetensors as multipart files), list,
// get, download either file, delete.
import { Hono } from "hono";
import { eq } from "drizzle-orm";
import { saes } from "../db/schema.ts";
import { loadSae, SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, SaeFormatError } from "../sae/io.ts";
import type { AppDeps } from "./app.ts";
import { ApiError, notFound } from "./errors.ts";

export function saeRoutes(deps: AppDeps) {
  const { db } = deps.database;
  const row = async (id: string) => {
    const [r] = await db.select().from(saes).where(eq(saes.id, id));
    if (!r) throw notFound("SAE", id);
    return r;
  };
  const file = (name: string) => async (c: import("hono").Context) => {
    const r = await row(c.req.param("id")!);
    const bytes = await Deno.readFile(`${r.path}/${name}`);
    return c.body(bytes, 200, {
      "Content-Type": name.endsWith(".json") ? "application/json" : "application/octet-stream",
      "Content-Disposition": `attachment; filename="${name}"`,
    });
  };
  return new Hono()
    .get("/", async (c) => c.json({ saes: await db.select().from(saes) }))
    .get("/:id", async (c) => c.json(await row(c.req.param("id"))))
    .get(`/:id/${SAE_CFG_FILENAME}`, file(SAE_CFG_FILENAME))
    .get(`/:id/${SAE_WEIGHTS_FILENAME}`, file(SAE_WEIGHTS_FILENAME))
    .delete("/:id", async (c) => {
      const r = await row(c.req.param("id"));
      await db.delete(saes).where(eq(saes.id, r.id));
      await Deno.remove(r.path, { recursive: true }).catch(() => {});
      return c.json({ deleted: r.id });
    })
    .post("/", async (c) => {
      let form: Record<string, unknown>;
      try {
        form = await c.req.parseBody();
      } catch (e) {
        throw new ApiError(
          400,
          "invalid_upload",
          `expected multipart/form-data: ${(e as Error).message}`,
        );
      }
      const cfg = form[SAE_CFG_FILENAME] ?? form.cfg,
        weights = form[SAE_WEIGHTS_FILENAME] ?? form.weights;
      if (!(cfg instanceof File) || !(weights instanceof File)) {
        throw new ApiError(
          400,
          "invalid_upload",
          `send two files: "${SAE_CFG_FILENAME}" and "${SAE_WEIGHTS_FILENAME}"`,
        );
      }
      const id = crypto.randomUUID();
      const dir = `${deps.config.dataDir}/saes/${id}`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeFile(`${dir}/${SAE_CFG_FILENAME}`, new Uint8Array(await cfg.arrayBuffer()));
      await Deno.writeFile(
        `${dir}/${SAE_WEIGHTS_FILENAME}`,
        new Uint8Array(await weights.arrayBuffer()),
      );
      let sae;
      try {
        sae = await loadSae(dir);
      } catch (e) {
        await Deno.remove(dir, { recursive: true });
        const msg = (e as Error).message;
        throw new ApiError(
          400,
          e instanceof SaeFormatError ? "invalid_sae" : "invalid_upload",
          `not a loadable SAE: ${msg}`,
        );
      }
      const name = typeof form.name === "string" && form.name
        ? form.name
        : `uploaded ${sae.cfg.kind} SAE`;
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
    });
}
