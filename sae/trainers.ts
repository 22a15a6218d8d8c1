// Picks the GPU trainer for an SAE kind: sparse kernels for TopK, dense ones for ReLU.
import type { GpuContext } from "../gpu/device.ts";
import { DenseGpuTrainer, type DenseTrainerOptions } from "./dense_trainer.ts";
import type { GpuSaeTrainer } from "./gpu_trainer.ts";
import { TopKGpuTrainer } from "./topk_trainer.ts";
import type { Sae } from "./types.ts";

export function createSaeTrainer(
  gpu: GpuContext,
  sae: Sae,
  opts: DenseTrainerOptions,
): Promise<GpuSaeTrainer> {
  return Promise.resolve(
    sae.cfg.kind === "topk"
      ? new TopKGpuTrainer(gpu, sae, opts)
      : new DenseGpuTrainer(gpu, sae, opts),
  );
}
