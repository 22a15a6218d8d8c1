// Where the SAE trains: the WGSL kernels on the WebGPU device, or the CPU trainer (native ONNX
// Runtime + JS, sae/cpu_topk_trainer.ts). On a software adapter (llvmpipe) the CPU trainer is the
// faster one for what it trains (a plain TopK SAE: its step alone 6.8× faster than llvmpipe at the
// default size, bench/RESULTS.md); on a real GPU, and for every other kind, the kernels.
import type { AdapterSummary, GpuContext } from "../gpu/device.ts";
import { CpuTopKTrainer } from "./cpu_topk_trainer.ts";
import type { OwnedTrainer, TrainerFactory } from "./trainer.ts";
import { createSaeTrainer } from "./trainers.ts";
import type { SaeConfig } from "./types.ts";

export const SAE_DEVICES = ["webgpu", "cpu"] as const;
export type SaeDevice = typeof SAE_DEVICES[number];
export type SaeDeviceRequest = "auto" | SaeDevice;

/** The kinds the CPU trainer trains, for messages. */
export const CPU_SAE_KINDS = "topk (an SAE, not a transcoder)";

export class SaeDeviceError extends Error {
  override name = "SaeDeviceError";
}

/** Whether the CPU trainer trains this SAE. */
export function cpuTrains(cfg: Pick<SaeConfig, "kind" | "transcoder">): boolean {
  return cfg.kind === "topk" && !cfg.transcoder;
}

/** Why sae_device "cpu" cannot train this SAE (what to use instead), or null when it can. */
export function cpuRefusal(cfg: Pick<SaeConfig, "kind" | "transcoder">): string | null {
  if (cpuTrains(cfg)) return null;
  const what = cfg.transcoder ? `a ${cfg.kind} transcoder` : `a ${cfg.kind} SAE`;
  return `sae_device "cpu" trains ${CPU_SAE_KINDS}, not ${what}; use sae_device "webgpu" or "auto"`;
}

/**
 * The device for a request: "auto" is cpu where the adapter is software and the CPU trainer trains
 * the SAE, else webgpu. "cpu" for an SAE it does not train is a SaeDeviceError naming what it does.
 */
export function chooseSaeDevice(
  requested: SaeDeviceRequest,
  adapter: Pick<AdapterSummary, "isSoftware">,
  cfg: Pick<SaeConfig, "kind" | "transcoder">,
): SaeDevice {
  switch (requested) {
    case "auto":
      return adapter.isSoftware && cpuTrains(cfg) ? "cpu" : "webgpu";
    case "cpu": {
      const refusal = cpuRefusal(cfg);
      if (refusal) throw new SaeDeviceError(refusal);
      return "cpu";
    }
    case "webgpu":
      return "webgpu";
  }
  throw new SaeDeviceError(
    `unknown sae_device "${requested}"; use one of auto, ${SAE_DEVICES.join(", ")}`,
  );
}

/** What "auto" picks for a plain TopK SAE on this adapter (for /health). */
export function autoSaeDevice(adapter: Pick<AdapterSummary, "isSoftware">): SaeDevice {
  return chooseSaeDevice("auto", adapter, { kind: "topk" });
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
