import { Hono } from "hono";
import type { AppDeps } from "./app.ts";
import { runtimeInfo, runtimeOf, runtimeStatus } from "../lm/session.ts";

export function healthRoutes(deps: AppDeps) {
  return new Hono().get("/", async (c) => {
    const { gpu, database } = deps;
    // Probed once per process (a one-node session per EP), then cached.
    const rt = await runtimeStatus();
    return c.json({
      status: gpu.lostReason ? "degraded" : "ok",
      gpu: {
        adapter: gpu.info.description,
        software: gpu.info.isSoftware,
        lost: gpu.lostReason,
        features: gpu.info.features,
        limits: gpu.info.limits,
      },
      onnxruntime: {
        versions: rt.versions,
        auto: runtimeInfo(rt.auto),
        eps: {
          ...rt.eps,
          // ORT Web's WebGPU EP runs on our device: it is available while the device is.
          webgpu: gpu.lostReason
            ? { runtime: runtimeOf("webgpu"), available: false, reason: gpu.lostReason }
            : { runtime: runtimeOf("webgpu"), available: true },
        },
      },
      database: { kind: database.kind },
      uptimeSeconds: Math.round((performance.now() - deps.startedAt) / 1000),
    });
  });
}
