import { Hono } from "hono";
import type { AppDeps } from "./app.ts";
import { ort } from "../lm/session.ts";

export function healthRoutes(deps: AppDeps) {
  return new Hono().get("/", (c) => {
    const { gpu, database } = deps;
    return c.json({
      status: gpu.lostReason ? "degraded" : "ok",
      gpu: {
        adapter: gpu.info.description,
        software: gpu.info.isSoftware,
        lost: gpu.lostReason,
        features: gpu.info.features,
        limits: gpu.info.limits,
      },
      onnxruntime: ort.env.versions.web ?? ort.env.versions.common,
      database: { kind: database.kind },
      uptimeSeconds: Math.round((performance.now() - deps.startedAt) / 1000),
    });
  });
}
