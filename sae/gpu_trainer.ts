// What every GPU SAE trainer shares: the parameters and their gradients on the device, the
// optimizer step (decoder constraint, global-norm clipping, AdamW), firing statistics, checkpoint
// state. Subclasses own the forward and the gradient kernels (dense_trainer.ts for the dense kinds,
// topk_trainer.ts for sparse TopK), recorded through the wrappers in gpu/.
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import { GradClipper } from "../gpu/grad_norm.ts";
import { AdamW } from "../gpu/adamw.ts";
import { DecoderNorm } from "../gpu/decoder_norm.ts";
import { FiringTracker } from "../gpu/metrics.ts";
import { Matmul } from "../gpu/matmul.ts";
import { addInto } from "../gpu/sae_dense.ts";
import { type Rec, submitPass, UniformArena } from "../gpu/kernel.ts";
import type { GpuContext } from "../gpu/device.ts";
import type { OwnedTrainer } from "./trainer.ts";
import {
  downloadSae,
  makeParamGroups,
  type ParamGroup,
  type SaeParams,
  uploadSae,
} from "./params.ts";
import type { Sae } from "./types.ts";

export interface TrainerOptions {
  weightDecay: number;
  gradClip: number;
  decoderConstraint: boolean;
  /** Tokens without firing after which a latent counts as dead. */
  deadWindowTokens?: number;
}

/** Options for a trainer that only runs inference (CE-eval, per-prefix evals): no step is taken. */
export const INFERENCE_ONLY: TrainerOptions = {
  weightDecay: 0,
  gradClip: 1,
  decoderConstraint: false,
};

export type TrainerState = Map<string, { data: Float32Array; shape: number[] }>;

/** Mean over elements of (x̂ − x)²: the MSE every trainer reports. */
export function meanSquaredError(x: ArrayLike<number>, xhat: ArrayLike<number>): number {
  let se = 0;
  for (let e = 0; e < x.length; e++) se += (xhat[e] - x[e]) ** 2;
  return se / x.length;
}

/** A checkpoint's `key`, which must hold `size` values; else an error naming both. */
export function checkpointData(state: TrainerState, key: string, size: number): Float32Array {
  const t = state.get(key);
  if (!t || t.data.length !== size) {
    throw new Error(
      `checkpoint: ${key} is missing or has ${t?.data.length} values, expected ${size}`,
    );
  }
  return t.data;
}

/**
 * x, x − b_dec, x̂ and ∂L/∂x̂ of one batch ([n, d_in] each): what every trainer's step keeps; y is
 * the MSE's target (x itself, or a transcoder's MLP output).
 */
export interface IoBuffers {
  x: GPUBuffer;
  xc: GPUBuffer;
  xhat: GPUBuffer;
  dx: GPUBuffer;
  y: GPUBuffer;
}

/**
 * The products of a dense [n, d_sae] SAE step (the dense and gated trainers): encode, decode, the
 * latents' gradient dx̂·W_decᵀ, and the weight gradients xcᵀ·dh and hᵀ·dx̂.
 */
export interface DenseMatmuls {
  enc: Matmul;
  dec: Matmul;
  dhMm: Matmul;
  gEnc: Matmul;
  gDec: Matmul;
}

/** DenseMatmuls for n tokens; `encBias`: the encoder product adds b_enc itself. */
export function denseMatmuls(
  dev: GPUDevice,
  { n, d, m }: { n: number; d: number; m: number },
  encBias: boolean,
): DenseMatmuls {
  return {
    enc: new Matmul(dev, { M: n, N: m, K: d }, encBias),
    dec: new Matmul(dev, { M: n, N: d, K: m }, true),
    dhMm: new Matmul(dev, { M: n, N: m, K: d, transB: true }),
    gEnc: new Matmul(dev, { M: d, N: m, K: n, transA: true }),
    gDec: new Matmul(dev, { M: m, N: d, K: n, transA: true }),
  };
}

export function destroyMatmuls(mm: DenseMatmuls): void {
  for (const x of [mm.enc, mm.dec, mm.dhMm, mm.gEnc, mm.gDec]) x.destroy();
}

/** A skip transcoder's per-batch-size pieces: x·W_skipᵀ, and its weight gradient dx̂ᵀ·x. */
interface SkipBatch {
  n: number;
  out: GPUBuffer;
  fwd: Matmul;
  grad: Matmul;
}

export abstract class GpuSaeTrainer implements OwnedTrainer {
  readonly dIn: number;
  readonly dSae: number;
  readonly device: GPUDevice;
  readonly params: SaeParams;
  readonly grads: Record<"W_enc" | "b_enc" | "W_dec" | "b_dec", GPUBuffer> & {
    threshold?: GPUBuffer;
    r_mag?: GPUBuffer;
    b_mag?: GPUBuffer;
    W_skip?: GPUBuffer;
  };
  /**
   * What the encoder subtracts from its input: b_dec, or for a transcoder zeros (its b_dec is an
   * output bias, as SAELens' and sparsify's transcoders).
   */
  protected readonly encoderBias: GPUBuffer;
  #zeroBias: GPUBuffer | null = null;
  #skip: SkipBatch | null = null;
  protected readonly firing: FiringTracker;
  protected lastMse = 0;
  #groups: ParamGroup[];
  #adam: AdamW;
  #clip: GradClipper;
  #decNorm: DecoderNorm | null;
  /** Uniforms of the kernels recorded by pass(). */
  protected readonly uniforms: UniformArena;

  constructor(readonly gpu: GpuContext, readonly sae: Sae, readonly opts: TrainerOptions) {
    const { cfg } = sae;
    this.device = gpu.device;
    this.dIn = cfg.dIn;
    this.dSae = cfg.dSae;
    const d = cfg.dIn, n = cfg.dSae;
    this.params = uploadSae(this.device, sae);
    this.uniforms = new UniformArena(this.device, "sae.uniforms");
    this.grads = {
      W_enc: createBuffer(this.device, d * n * 4, "grad.W_enc"),
      b_enc: createBuffer(this.device, n * 4, "grad.b_enc"),
      W_dec: createBuffer(this.device, n * d * 4, "grad.W_dec"),
      b_dec: createBuffer(this.device, d * 4, "grad.b_dec"),
    };
    // JumpReLU's θ is trained (straight-through estimator); BatchTopK's threshold is a running
    // statistic the trainer sets.
    const trainTheta = cfg.kind === "jumprelu";
    if (trainTheta) this.grads.threshold = createBuffer(this.device, n * 4, "grad.threshold");
    if (cfg.transcoder?.skip) {
      this.grads.W_skip = createBuffer(this.device, d * d * 4, "grad.W_skip");
    }
    if (cfg.transcoder) this.#zeroBias = createBuffer(this.device, d * 4, "transcoder.zero-bias");
    this.encoderBias = this.#zeroBias ?? this.params.b_dec;
    if (cfg.kind === "gated") {
      this.grads.r_mag = createBuffer(this.device, n * 4, "grad.r_mag");
      this.grads.b_mag = createBuffer(this.device, n * 4, "grad.b_mag");
    }
    this.#groups = makeParamGroups(this.device, cfg, this.params, this.grads, {
      trainable: (name) => name !== "threshold" || trainTheta,
      // As torch.optim.AdamW(sae.parameters(), weight_decay=…) in the paper's recipe: biases too
      // (not θ, which decay would pull toward firing everywhere).
      decay: (name) => name !== "threshold",
    });
    this.#adam = new AdamW(this.device, this.#groups, { weightDecay: opts.weightDecay });
    this.#clip = new GradClipper(
      this.device,
      this.#groups.map((g) => ({ grad: g.grad, size: g.size })),
    );
    this.#decNorm = opts.decoderConstraint
      ? new DecoderNorm(this.device, this.params.W_dec, n, d)
      : null;
    this.firing = new FiringTracker(this.device, n, opts.deadWindowTokens ?? 1_000_000);
  }

  /**
   * inference: BatchTopK uses its running threshold instead of the batch selection. target: the
   * MSE's target (a transcoder's MLP output; required for transcoders), default x.
   */
  abstract forward(
    x: Float32Array,
    n: number,
    inference?: boolean,
    target?: Float32Array,
  ): Promise<{
    xhat: Float32Array;
    mse: number;
    l0: number;
  }>;

  /**
   * Gradients of wMse·mse + wExt·⟨gExt, x̂⟩ + the SAE's own terms into `grads`, no update (adapters
   * such as LoRA on the SAE read them); returns the SAE's auxiliary loss.
   */
  abstract backward(
    o: { wMse: number; gExt: Float32Array | GPUBuffer | null; wExt: number; l1?: number },
  ): Promise<{ aux: number }>;

  /** Dead latents after the last step. */
  protected lastDead = 0;

  async backwardAndStep(
    o: {
      wMse: number;
      gExt: Float32Array | GPUBuffer | null;
      wExt: number;
      lr: number;
      l1?: number;
    },
  ): Promise<{ gradNorm: number; aux: number; dead: number }> {
    const { aux } = await this.backward(o);
    const { gradNorm, dead } = await this.optimizerStep(o.lr);
    this.lastDead = dead;
    return { gradNorm, aux, dead };
  }

  /** Dead latents now (reads the firing tracker). */
  deadLatents(): Promise<number> {
    return this.firing.readDead();
  }

  /** Frees the per-batch-size buffers. */
  protected abstract freeBatch(): void;

  /** One compute pass in its own submit; `before` records into the encoder ahead of it. */
  protected pass(
    label: string,
    record: (rec: Rec) => void,
    before?: (enc: GPUCommandEncoder) => void,
  ): void {
    this.gpu.assertAlive();
    submitPass(this.device, this.uniforms, label, record, before);
  }

  /**
   * The gradients are in `grads`: applies the decoder constraint, clips, takes one AdamW step and
   * renormalises; returns the pre-clip global norm and the dead-latent count.
   */
  protected async optimizerStep(lr: number): Promise<{ gradNorm: number; dead: number }> {
    const dn = this.#decNorm;
    if (dn) dn.run((pass) => dn.recordRemoveParallel(pass, this.grads.W_dec));
    this.#clip.clip(this.opts.gradClip, false);
    this.#adam.step(lr, this.#clip.result);
    if (dn) dn.run((pass) => dn.recordNormalize(pass));
    // One wait for both readbacks (each alone waits out the device's poll interval).
    const [{ norm }, dead] = await Promise.all([this.#clip.read(), this.firing.readDead()]);
    return { gradNorm: norm, dead };
  }

  /**
   * Refuses a batch whose dense [n, d_sae] activations would not fit one storage binding, naming
   * the most tokens a step that do (TopK trainers chunk instead; dense kinds need the whole row set).
   */
  protected assertDenseBatchFits(n: number, kind: string): void {
    const m = this.sae.cfg.dSae, limit = this.device.limits.maxStorageBufferBindingSize;
    if (n * m * 4 <= limit) return;
    throw new RangeError(
      `a batch of ${n} tokens × d_sae ${m} needs ${n * m * 4} bytes per activation buffer, ` +
        `over this adapter's storage binding limit of ${limit}: use at most ` +
        `${Math.floor(limit / (m * 4))} tokens a step with a ${kind} SAE`,
    );
  }

  /** The IoBuffers of an n-token batch, labelled `${prefix}.x` etc. */
  protected ioBuffers(n: number, prefix: string): IoBuffers {
    const make = (name: string) => createBuffer(this.device, n * this.dIn * 4, `${prefix}.${name}`);
    const x = make("x");
    return {
      x,
      xc: make("xc"),
      xhat: make("xhat"),
      dx: make("dx"),
      y: this.sae.cfg.transcoder ? make("y") : x,
    };
  }

  /**
   * Checks the target against the config (a transcoder needs one, an SAE takes none) and uploads
   * it; returns what the host-side MSE compares x̂ with.
   */
  protected writeTarget(b: IoBuffers, x: Float32Array, target?: Float32Array): Float32Array {
    if (!this.sae.cfg.transcoder) {
      if (target && target !== x) {
        throw new Error("forward: a target was given to an SAE (only transcoders take one)");
      }
      return x;
    }
    if (!target) {
      throw new Error("forward: a transcoder needs its target (the MLP's output) with its input");
    }
    if (target.length !== x.length) {
      throw new RangeError(`forward: target has ${target.length} values, x has ${x.length}`);
    }
    write(this.device, b.y, target);
    return target;
  }

  #skipFor(n: number): SkipBatch {
    if (this.#skip?.n === n) return this.#skip;
    this.#freeSkip();
    const d = this.dIn, dev = this.device;
    this.#skip = {
      n,
      out: createBuffer(dev, n * d * 4, "skip.out"),
      fwd: new Matmul(dev, { M: n, N: d, K: d, transB: true }),
      grad: new Matmul(dev, { M: d, N: d, K: n, transA: true }),
    };
    return this.#skip;
  }

  #freeSkip(): void {
    const s = this.#skip;
    if (!s) return;
    s.out.destroy();
    s.fwd.destroy();
    s.grad.destroy();
    this.#skip = null;
  }

  /** Skip transcoders: x̂ += x·W_skipᵀ (after the decoder wrote x̂). No-op otherwise. */
  protected recordSkipForward(rec: Rec, b: IoBuffers, n: number): void {
    if (!this.params.W_skip) return;
    const s = this.#skipFor(n);
    s.fwd.record(rec.pass, b.x, this.params.W_skip, s.out);
    addInto(rec, { src: s.out, out: b.xhat }, { rows: n, cols: this.dIn });
  }

  /** Skip transcoders: ∂W_skip = dx̂ᵀ·x [d_out, d_in] (after dx̂ is in b.dx). No-op otherwise. */
  protected recordSkipGrad(rec: Rec, b: IoBuffers, n: number): void {
    if (!this.grads.W_skip) return;
    this.#skipFor(n).grad.record(rec.pass, b.dx, b.x, this.grads.W_skip);
  }

  /** Host-side MSE (mean over elements) of the batch just reconstructed. */
  protected mseOf(x: Float32Array, xhat: Float32Array): number {
    this.lastMse = meanSquaredError(x, xhat);
    return this.lastMse;
  }

  async state(): Promise<TrainerState> {
    const out: TrainerState = new Map();
    for (const g of this.#groups) {
      out.set(g.name, { data: await readF32(this.device, g.param, g.size), shape: [g.size] });
      out.set(`m.${g.name}`, { data: await readF32(this.device, g.m, g.size), shape: [g.size] });
      out.set(`v.${g.name}`, { data: await readF32(this.device, g.v, g.size), shape: [g.size] });
    }
    out.set("adam.t", { data: Float32Array.of(this.#adam.t), shape: [1] });
    const th = this.params.threshold;
    if (th && !out.has("threshold")) {
      out.set("threshold", {
        data: await readF32(this.device, th, th.size / 4),
        shape: [th.size / 4],
      });
    }
    return out;
  }

  restore(state: TrainerState): Promise<void> {
    for (const g of this.#groups) {
      for (
        const [key, buf] of [[g.name, g.param], [`m.${g.name}`, g.m], [`v.${g.name}`, g.v]] as const
      ) {
        write(this.device, buf, checkpointData(state, key, g.size));
      }
    }
    this.#adam.t = state.get("adam.t")?.data[0] ?? 0;
    const th = state.get("threshold");
    if (this.params.threshold && th) write(this.device, this.params.threshold, th.data);
    return Promise.resolve();
  }

  async toSae(): Promise<Sae> {
    return await downloadSae(this.device, this.params, this.sae.cfg);
  }

  release(): void {
    this.freeBatch();
    this.#freeSkip();
    this.#zeroBias?.destroy();
    this.#adam.destroy();
    this.#clip.destroy();
    this.firing.destroy();
    for (const b of Object.values(this.grads)) b.destroy();
    this.uniforms.destroy();
  }
}
