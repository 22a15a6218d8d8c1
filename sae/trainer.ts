// The trainer contract: what the fine-tune loop needs of an SAE and its optimizer (SaeTrainer),
// what a job owns besides (OwnedTrainer), and how a job gets one (TrainerFactory). The GPU
// trainers in sae/ implement it; train/ and jobs/ use it.
import type { GpuContext } from "../gpu/device.ts";
import type { Sae } from "./types.ts";

/** What the loop needs of an SAE and its optimizer (implemented on the GPU by sae/). */
export interface SaeTrainer {
  readonly dIn: number;
  /** Latents, where known (for the dead fraction in the metrics). */
  readonly dSae?: number;
  /**
   * Reconstructs x [n, d]; keeps what backward needs. `inference`: as at evaluation (BatchTopK
   * applies its running threshold rather than selecting over the batch). `target`: what x̂ should
   * be and the MSE compares it with (a transcoder's MLP output, required for transcoders; SAEs
   * take none: x).
   */
  forward(
    x: Float32Array,
    n: number,
    inference?: boolean,
    target?: Float32Array,
  ): Promise<{ xhat: Float32Array; mse: number; l0: number }>;
  /**
   * Backward of wMse·mse + wExt·⟨gExt, x̂⟩ (gExt = ∂KL/∂x̂ from the LM) + the SAE's own terms
   * (L1 with `l1` for relu, auxk for topk), then global-norm clipping and one AdamW step at lr.
   */
  backwardAndStep(
    opts: {
      wMse: number;
      gExt: Float32Array | GPUBuffer | null;
      wExt: number;
      lr: number;
      l1?: number;
    },
  ): Promise<{ gradNorm: number; aux: number; dead: number }>;
  /**
   * forward() for activations on the GPU (ONNX Runtime's WebGPU output on our device): x̂ stays
   * on the GPU. Optional; with it, the WebGPU EP's steps copy no [B·T, d] tensor to the host.
   */
  forwardGpu?(
    x: GPUBuffer,
    n: number,
    inference?: boolean,
  ): Promise<{ xhat: GPUBuffer; mse: number; fvu: number; l0: number }>;
  /**
   * ∂⟨g, x̂⟩/∂x for the last forward's input (adapters before the hook need it); optional.
   */
  inputGradient?(g: Float32Array): Promise<Float32Array>;
  /** Weights and optimizer state, for checkpoints. */
  state(): Promise<Map<string, { data: Float32Array; shape: number[] }>>;
  restore(state: Map<string, { data: Float32Array; shape: number[] }>): Promise<void>;
}

/** A trainer that can also hand back its SAE and free its GPU memory. */
export interface OwnedTrainer extends SaeTrainer {
  toSae(): Promise<Sae>;
  release(): void;
}

export type TrainerFactory = (
  gpu: GpuContext,
  sae: Sae,
  opts: {
    weightDecay: number;
    gradClip: number;
    decoderConstraint: boolean;
    deadWindowTokens?: number;
    jumpBandwidth?: number;
    thresholdStartStep?: number;
    /** Where the SAE trains (sae/sae_device.ts); default webgpu. */
    saeDevice?: "webgpu" | "cpu";
  },
) => Promise<OwnedTrainer>;
