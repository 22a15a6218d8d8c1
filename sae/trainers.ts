// Picks the GPU trainer for an SAE kind: sparse kernels for TopK, dense ones for ReLU.
import type { GpuContext } from "../gpu/device.ts";
import { DenseGpuTrainer, type DenseTrainerOptions } from "./dense_trainer.ts";
import type { GpuSaeTrainer } from "./gpu_trainer.ts";
import { TopKGpuTrainer } from "./topk_trainer.ts";
import { GatedGpuTrainer } from "./gated_trainer.ts";
import { MatryoshkaGpuTrainer } from "./matryoshka_trainer.ts";
import type { Sae } from "./types.ts";

/** Kinds whose trainers take a transcoder's target and skip (sae/gpu_trainer.ts). */
export const TRANSCODER_KINDS: readonly string[] = ["relu", "topk", "batchtopk", "jumprelu"];

export function createSaeTrainer(
  gpu: GpuContext,
  sae: Sae,
  opts: DenseTrainerOptions & { saeDevice?: "webgpu" | "cpu" },
): Promise<GpuSaeTrainer> {
  if (opts.saeDevice === "cpu") {
    throw new Error(
      'createSaeTrainer builds GPU trainers; for sae_device "cpu" use sae/sae_device.ts createTrainer',
    );
  }
  if (sae.cfg.transcoder && !TRANSCODER_KINDS.includes(sae.cfg.kind)) {
    throw new Error(
      `transcoders train as ${TRANSCODER_KINDS.join(", ")}, not ${sae.cfg.kind}`,
    );
  }
  return Promise.resolve(
    sae.cfg.kind === "topk"
      ? new TopKGpuTrainer(gpu, sae, opts)
      : sae.cfg.kind === "gated"
      ? new GatedGpuTrainer(gpu, sae, opts)
      : sae.cfg.kind === "matryoshka_batchtopk"
      ? new MatryoshkaGpuTrainer(gpu, sae, opts)
      : new DenseGpuTrainer(gpu, sae, opts),
  );
}
