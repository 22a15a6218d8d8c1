// What every GPU SAE trainer shares: the parameters and their gradients on the device, the
// optimizer step (decoder constraint, global-norm clipping, AdamW), firing statistics, checkpoint
// state, and the element-wise kernels of shaders/sae_dense.wgsl. Subclasses own the forward and the
// gradient kernels (dense_trainer.ts for ReLU, topk_trainer.ts for sparse TopK).
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import { GradClipper } from "../gpu/clip.ts";
import { AdamW } from "../gpu/adamw.ts";
import { DecoderNorm } from "../gpu/decoder_norm.ts";
import { FiringTracker } from "../gpu/metrics.ts";
import { dispatch, grid1d, loadShader, pipelineCache } from "../gpu/pipelines.ts";
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

const WG = 64;

/** Entry points of shaders/sae_dense.wgsl. */
export type DenseEntry =
  | "center"
  | "topk_relu"
  | "relu"
  | "dxhat"
  | "mask_grad"
  | "col_sum"
  | "bdec_grad"
  | "row_norms"
  | "l1_dec"
  | "count_active";

export interface TrainerOptions {
  weightDecay: number;
  gradClip: number;
  decoderConstraint: boolean;
  /** Tokens without firing after which a latent counts as dead. */
  deadWindowTokens?: number;
}

export type TrainerState = Map<string, { data: Float32Array; shape: number[] }>;

export abstract class GpuSaeTrainer implements OwnedTrainer {
  readonly dIn: number;
  readonly dSae: number;
  readonly device: GPUDevice;
  readonly params: SaeParams;
  readonly grads: Record<"W_enc" | "b_enc" | "W_dec" | "b_dec", GPUBuffer> & {
    threshold?: GPUBuffer;
  };
  protected readonly firing: FiringTracker;
  protected lastMse = 0;
  #groups: ParamGroup[];
  #adam: AdamW;
  #clip: GradClipper;
  #decNorm: DecoderNorm | null;
  #pipelines = new Map<DenseEntry, GPUComputePipeline>();
  #uniforms = new Map<string, GPUBuffer>();
  #layout: GPUPipelineLayout | null = null;

  constructor(readonly gpu: GpuContext, readonly sae: Sae, readonly opts: TrainerOptions) {
    const { cfg } = sae;
    this.device = gpu.device;
    this.dIn = cfg.dIn;
    this.dSae = cfg.dSae;
    const d = cfg.dIn, n = cfg.dSae;
    this.params = uploadSae(this.device, sae);
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

  /** inference: BatchTopK uses its running threshold instead of the batch selection. */
  abstract forward(x: Float32Array, n: number, inference?: boolean): Promise<{
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

  protected pass(label: string, record: (pass: GPUComputePassEncoder) => void): void {
    this.gpu.assertAlive();
    const enc = this.device.createCommandEncoder({ label });
    const pass = enc.beginComputePass({ label });
    record(pass);
    pass.end();
    this.device.queue.submit([enc.finish()]);
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
    const { norm } = await this.#clip.read();
    const dead = await this.firing.readDead();
    return { gradNorm: norm, dead };
  }

  // One explicit layout for every sae_dense entry: with "auto", entries that leave in1 unread
  // would get a smaller layout and the shared bind-group shape would not fit them.
  #densePipeline(e: DenseEntry): GPUComputePipeline {
    let p = this.#pipelines.get(e);
    if (!p) {
      const ro = { type: "read-only-storage" } as const;
      this.#layout ??= this.device.createPipelineLayout({
        bindGroupLayouts: [this.device.createBindGroupLayout({
          entries: [
            { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: ro },
            { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: ro },
            { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
            { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
          ],
        })],
      });
      p = this.device.createComputePipeline({
        label: `sae_dense.${e}`,
        layout: this.#layout,
        compute: {
          module: this.device.createShaderModule({ code: loadShader("sae_dense") }),
          entryPoint: e,
          constants: { WG },
        },
      });
      this.#pipelines.set(e, p);
    }
    return p;
  }

  /** A uniform per call site, so several dispatches in one pass keep their own scalars. */
  protected uniform(site: string, words: ArrayBuffer): GPUBuffer {
    let u = this.#uniforms.get(site);
    if (!u) {
      u = this.device.createBuffer({
        label: `uniform.${site}`,
        size: 32,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.#uniforms.set(site, u);
    }
    this.device.queue.writeBuffer(u, 0, words);
    return u;
  }

  /** Records one sae_dense entry over `threads` invocations. */
  protected runDense(
    pass: GPUComputePassEncoder,
    e: DenseEntry,
    site: string,
    bufs: [GPUBuffer, GPUBuffer, GPUBuffer],
    threads: number,
    dims: { rows: number; cols: number; k?: number; a?: number; b?: number },
  ): void {
    const p = this.#densePipeline(e);
    const words = new ArrayBuffer(32);
    new Uint32Array(words, 0, 4).set([dims.rows, dims.cols, dims.k ?? 0, 0]);
    new Float32Array(words, 16, 4).set([dims.a ?? 0, dims.b ?? 0, 0, 0]);
    const u = this.uniform(site, words);
    pass.setPipeline(p);
    pass.setBindGroup(
      0,
      this.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [...bufs, u].map((buffer, binding) => ({ binding, resource: { buffer } })),
      }),
    );
    const [x, y] = grid1d(Math.ceil(threads / WG));
    pass.dispatchWorkgroups(x, y);
  }

  /**
   * Records entry `e` of shaders/<shader>.wgsl: `bufs` bound in order, then a uniform holding
   * `words` (one per site, so dispatches sharing a pass keep their own values), over `threads`
   * invocations — or one workgroup for entries that scan with a single one.
   */
  protected runEntry(
    pass: GPUComputePassEncoder,
    shader: string,
    e: string,
    bufs: GPUBuffer[],
    words: ArrayBuffer,
    threads: number | "one workgroup",
    site = `${shader}.${e}`,
  ): void {
    const one = threads === "one workgroup";
    const p = pipelineCache(this.device).get(
      loadShader(shader),
      e,
      one ? {} : { WG },
      `${shader}.${e}`,
    );
    const u = this.uniform(site, words);
    dispatch(this.device, pass, p, [...bufs, u], one ? [1, 1] : grid1d(Math.ceil(threads / WG)));
  }

  /** Host-side MSE (mean over elements) of the batch just reconstructed. */
  protected mseOf(x: Float32Array, xhat: Float32Array): number {
    let se = 0;
    for (let e = 0; e < x.length; e++) se += (xhat[e] - x[e]) ** 2;
    this.lastMse = se / x.length;
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
        const t = state.get(key);
        if (!t || t.data.length !== g.size) {
          throw new Error(
            `checkpoint: ${key} is missing or has ${t?.data.length} values, expected ${g.size}`,
          );
        }
        write(this.device, buf, t.data);
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
    this.#adam.destroy();
    this.#clip.destroy();
    this.firing.destroy();
    for (const b of [...Object.values(this.grads), ...this.#uniforms.values()]) b.destroy();
  }
}
