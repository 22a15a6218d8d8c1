// AdamW over a list of parameter groups (shaders/adamw.wgsl), one dispatch per binding-sized chunk.
import { upload } from "./buffers.ts";
import { type Chunk, chunkBinding, chunkLimits, f32Chunks } from "./chunks.ts";
import { Kernel, requireValues } from "./kernel.ts";
import { grid1d } from "./pipelines.ts";

/** A parameter, its gradient and its Adam moments, as AdamW updates them. */
export interface ParamGroup {
  name: string;
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  size: number;
  /** Decoupled weight decay applies to this parameter. */
  decay: boolean;
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay, applied to groups with `decay: true` only. Default 0. */
  weightDecay?: number;
  /** Caps the bytes bound at once (tests use it to exercise chunking). */
  maxBindingBytes?: number;
}

const WG = 256;
const kernel = new Kernel({
  name: "adamw",
  struct: "Hyper",
  fields: {
    beta1: "f32",
    beta2: "f32",
    // 1 − β, rounded from float64: 1 − f32(0.999) is off by 5e-5 relative.
    one_minus_beta1: "f32",
    one_minus_beta2: "f32",
    eps: "f32",
    // 1 − lr·wd for decayed parameters, 1 otherwise.
    decay_factor: "f32",
    // lr / bc1
    step_size: "f32",
    // 1 / √bc2
    inv_sqrt_bc2: "f32",
    count: "u32",
  },
  wg: WG,
});

interface Piece {
  group: ParamGroup;
  chunk: Chunk;
  hyper: GPUBuffer;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken so far (bias correction uses t+1 for the next step). */
  t = 0;
  #pieces: Piece[] = [];
  #unitScale: GPUBuffer;
  #bindGroups = new Map<GPUBuffer, GPUBindGroup[]>();
  #pipeline: GPUComputePipeline;

  constructor(readonly device: GPUDevice, readonly groups: ParamGroup[], opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    const limits = chunkLimits(device, opts.maxBindingBytes);
    for (const group of groups) {
      for (
        const [what, b] of [["param", group.param], ["grad", group.grad], ["m", group.m], [
          "v",
          group.v,
        ]] as const
      ) {
        requireValues("adamw", `${group.name}.${what}`, b, group.size, `size=${group.size}`);
      }
      for (const chunk of f32Chunks(group.size, limits)) {
        const hyper = device.createBuffer({
          label: `adamw.${group.name}.hyper`,
          size: kernel.pack(this.#hyper(0, 0, 0, 0)).byteLength,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
        this.#pieces.push({ group, chunk, hyper });
      }
    }
    this.#unitScale = upload(device, new Float32Array([1, 0]), "adamw.unit-scale");
    this.#pipeline = kernel.pipeline(device, "main");
  }

  #hyper(lr: number, bc1: number, bc2: number, count: number, decay = false) {
    return {
      beta1: this.beta1,
      beta2: this.beta2,
      one_minus_beta1: 1 - this.beta1,
      one_minus_beta2: 1 - this.beta2,
      eps: this.eps,
      decay_factor: decay ? 1 - lr * this.weightDecay : 1,
      step_size: bc1 ? lr / bc1 : 0,
      inv_sqrt_bc2: bc2 ? 1 / Math.sqrt(bc2) : 0,
      count,
    };
  }

  #bindGroupsFor(gradScale: GPUBuffer): GPUBindGroup[] {
    let bgs = this.#bindGroups.get(gradScale);
    if (!bgs) {
      const layout = this.#pipeline.getBindGroupLayout(0);
      bgs = this.#pieces.map(({ group, chunk, hyper }) =>
        this.device.createBindGroup({
          label: `adamw.${group.name}`,
          layout,
          entries: [
            { binding: 0, resource: chunkBinding(group.param, chunk) },
            { binding: 1, resource: chunkBinding(group.grad, chunk) },
            { binding: 2, resource: chunkBinding(group.m, chunk) },
            { binding: 3, resource: chunkBinding(group.v, chunk) },
            { binding: 4, resource: { buffer: hyper } },
            { binding: 5, resource: { buffer: gradScale, offset: 0, size: 4 } },
          ],
        })
      );
      this.#bindGroups.set(gradScale, bgs);
    }
    return bgs;
  }

  /**
   * Records step t+1 with learning rate `lr` into `pass`. The step's scalars go through
   * queue.writeBuffer, which lands before the next submit: submit this pass's encoder before
   * recording another step. `gradScale` (f32, element 0) multiplies every gradient — pass the
   * buffer from GradClipper to clip without a CPU round trip.
   */
  record(pass: GPUComputePassEncoder, lr: number, gradScale?: GPUBuffer): void {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW: learning rate ${lr} is invalid`);
    this.t += 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    const bgs = this.#bindGroupsFor(gradScale ?? this.#unitScale);
    pass.setPipeline(this.#pipeline);
    this.#pieces.forEach(({ group, chunk, hyper: hbuf }, i) => {
      if (chunk.count === 0) return;
      const hyper = kernel.pack(this.#hyper(lr, bc1, bc2, chunk.count, group.decay));
      this.device.queue.writeBuffer(hbuf, 0, hyper);
      pass.setBindGroup(0, bgs[i]);
      const [x, y] = grid1d(Math.ceil(chunk.count / WG));
      pass.dispatchWorkgroups(x, y);
    });
  }

  /** One step in its own command buffer. */
  step(lr: number, gradScale?: GPUBuffer): void {
    const enc = this.device.createCommandEncoder({ label: "adamw" });
    const pass = enc.beginComputePass({ label: "adamw" });
    this.record(pass, lr, gradScale);
    pass.end();
    this.device.queue.submit([enc.finish()]);
  }

  destroy(): void {
    for (const p of this.#pieces) p.hyper.destroy();
    this.#unitScale.destroy();
  }
}
