// Where the SAE trains: the WGSL kernels on the WebGPU device, or the CPU trainer (native ONNX
// Runtime + JS, sae/cpu_topk_trainer.ts). On a software adapter (llvmpipe) the CPU trainer is the
// faster one for what it trains (a plain TopK SAE: its step alone 6.8× faster than llvmpipe at the
// default size, bench/RESULTS.md); on a real GPU, and for every other kind, the kernels.
import type { AdapterSummary, GpuContext } from "../gpu/device.ts";
import type { EpStatus } from "../lm/session.ts";
import { cpuRefusal, CpuTopKTrainer, cpuTrains } from "./cpu_topk_trainer.ts";
import type { OwnedTrainer, TrainerFactory } from "./trainer.ts";
import { createSaeTrainer } from "./trainers.ts";
import type { SaeConfig } from "./types.ts";

export { CPU_SAE_KINDS, cpuRefusal, cpuTrains } from "./cpu_topk_trainer.ts";

export const SAE_DEVICES = ["webgpu", "cpu"] as const;
export type SaeDevice = typeof SAE_DEVICES[number];
export type SaeDeviceRequest = "auto" | SaeDevice;

export class SaeDeviceError extends Error {
  override name = "SaeDeviceError";
}

/** Whether the native runtime's CPU EP loaded here (lm/session.ts runtimeStatus().eps.cpu). */
export type NativeCpu = Pick<EpStatus, "available" | "reason">;

/**
 * The device for a request: "auto" is cpu where the adapter is software, the CPU trainer trains
 * the SAE and the native runtime it runs on loaded, else webgpu. "cpu" for an SAE it does not
 * train, or without the native runtime, is a SaeDeviceError naming what it needs.
 */
export function chooseSaeDevice(
  requested: SaeDeviceRequest,
  adapter: Pick<AdapterSummary, "isSoftware">,
  cfg: Pick<SaeConfig, "kind" | "transcoder">,
  nativeCpu: NativeCpu,
): SaeDevice {
  switch (requested) {
    case "auto":
      return adapter.isSoftware && cpuTrains(cfg) && nativeCpu.available ? "cpu" : "webgpu";
    case "cpu": {
      const refusal = cpuRefusal(cfg);
      if (refusal) throw new SaeDeviceError(refusal);
      if (!nativeCpu.available) {
        throw new SaeDeviceError(
          `sae_device "cpu" runs on the native ONNX Runtime (onnxruntime-node), which did not ` +
            `load here (${
              nativeCpu.reason ?? "no reason given"
            }); use sae_device "webgpu" or "auto"`,
        );
      }
      return "cpu";
    }
    case "webgpu":
      return "webgpu";
  }
  throw new SaeDeviceError(
    `unknown sae_device "${requested}"; use one of auto, ${SAE_DEVICES.join(", ")}`,
  );
}

/** What "auto" picks for a plain TopK SAE on this machine (for /health). */
export function autoSaeDevice(
  adapter: Pick<AdapterSummary, "isSoftware">,
  nativeCpu: NativeCpu,
): SaeDevice {
  return chooseSaeDevice("auto", adapter, { kind: "topk" }, nativeCpu);
}

/**
 * The service's TrainerFactory: the CPU trainer where opts.saeDevice is "cpu", the GPU trainers
 * (sae/trainers.ts) otherwise.
 */
export const createTrainer: TrainerFactory = (
  gpu: GpuContext,
  sae,
  opts,
): Promise<OwnedTrainer> =>
  opts.saeDevice === "cpu" ? CpuTopKTrainer.create(sae, opts) : createSaeTrainer(gpu, sae, opts);
