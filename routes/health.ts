import { Hono } from "hono";
import type { AppDeps } from "./deps.ts";
import { runtimeInfo, runtimeOf, runtimeStatus } from "../lm/session.ts";
import { describe } from "./describe.ts";
import { autoSaeDevice, CPU_SAE_KINDS } from "../sae/sae_device.ts";
import { Health } from "./responses.ts";

export function healthRoutes(deps: AppDeps) {
  return new Hono().get(
    "/",
    describe({
      summary:
        "GPU adapter and limits, ONNX Runtime versions and EPs, the SAE device, database, uptime",
      public: true,
      ok: {
        status: 200,
        description: "ok, or degraded (the GPU device was lost)",
        content: { "application/json": Health },
      },
    }),
    async (c) => {
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
        // Where fine-tunes train a plain TopK SAE with sae_device "auto".
        sae: { auto: autoSaeDevice(gpu.info, rt.eps.cpu), cpu_kinds: CPU_SAE_KINDS },
        database: { kind: database.kind },
        uptimeSeconds: Math.round((performance.now() - deps.startedAt) / 1000),
      });
    },
  );
}
