import { Hono } from "hono";
import { eq } from "drizzle-orm";
import { models } from "../db/schema.ts";
import type { AppDeps } from "./app.ts";
import { notFound } from "./errors.ts";

export function modelRoutes(deps: AppDeps) {
  const { db } = deps.database;
  return new Hono()
    .get("/", async (c) => c.json({ models: await db.select().from(models) }))
    .get("/:id", async (c) => {
      const [m] = await db.select().from(models).where(eq(models.id, c.req.param("id")));
      if (!m) throw notFound("model", c.req.param("id"));
      return c.json(m);
    });
}
