// Global-norm gradient clipping over many buffers (shaders/grad_norm.wgsl): GradClipper. The norm
// and the clip factor stay on the GPU in `result` = [scale, norm]; read them only when metrics are
// logged.
import { createBuffer, readF32 } from "./buffers.ts";
import { type Chunk, chunkBinding, chunkLimits, f32Chunks } from "./chunks.ts";
import { Kernel, requireValues } from "./kernel.ts";
import { grid1d } from "./pipelines.ts";

const WG = 256;
const kernel = new Kernel({
  name: "grad_norm",
  struct: "Args",
  fields: { count: "u32", base: "u32", max_norm: "f32" },
  wg: WG,
});
/** Partial sums per chunk: enough workgroups to keep every core busy, few enough to sum in one. */
const MAX_PARTIALS_PER_CHUNK = 64;

export interface GradBuffer {
  grad: GPUBuffer;
  size: number;
}

interface Piece {
  chunk: Chunk;
  grad: GPUBuffer;
  workgroups: number;
  args: GPUBuffer;
  partialBG: GPUBindGroup;
  scaleBG: GPUBindGroup;
}

export class GradClipper {
  /** [scale, norm] (f32) after `record`; AdamW takes it as its gradScale. */
  readonly result: GPUBuffer;
  #partials: GPUBuffer;
  #finalArgs: GPUBuffer;
  #finalBG: GPUBindGroup;
  #pieces: Piece[] = [];
  #pPartial: GPUComputePipeline;
  #pFinal: GPUComputePipeline;
  #pScale: GPUComputePipeline;

  constructor(
    readonly device: GPUDevice,
    grads: GradBuffer[],
    opts: { maxBindingBytes?: number } = {},
  ) {
    this.#pPartial = kernel.pipeline(device, "partial");
    this.#pFinal = kernel.pipeline(device, "finalize");
    this.#pScale = kernel.pipeline(device, "scale");
    this.result = createBuffer(device, 8, "grad_norm.result");
    const limits = chunkLimits(device, opts.maxBindingBytes);
    const plan: Array<{ grad: GPUBuffer; chunk: Chunk; workgroups: number; base: number }> = [];
    let total = 0;
    for (const [i, { grad, size }] of grads.entries()) {
      requireValues("grad_norm", `grads[${i}]`, grad, size, `size=${size}`);
      for (const chunk of f32Chunks(size, limits)) {
        if (chunk.count === 0) continue;
        const workgroups = Math.min(MAX_PARTIALS_PER_CHUNK, Math.ceil(chunk.count / WG));
        plan.push({ grad, chunk, workgroups, base: total });
        total += workgroups;
      }
    }
    this.#partials = createBuffer(device, Math.max(1, total) * 4, "grad_norm.partials");
    for (const { grad, chunk, workgroups, base } of plan) {
      const args = kernel.uniformBuffer(device, { count: chunk.count, base, max_norm: 0 });
      this.#pieces.push({
        chunk,
        grad,
        workgroups,
        args,
        partialBG: device.createBindGroup({
          layout: this.#pPartial.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: chunkBinding(grad, chunk) },
            { binding: 1, resource: { buffer: this.#partials } },
            { binding: 2, resource: { buffer: args } },
          ],
        }),
        scaleBG: device.createBindGroup({
          layout: this.#pScale.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: chunkBinding(grad, chunk) },
            { binding: 1, resource: { buffer: this.result } },
            { binding: 2, resource: { buffer: args } },
          ],
        }),
      });
    }
    this.#finalArgs = kernel.uniformBuffer(
      device,
      { count: total, base: 0, max_norm: 0 },
      "grad_norm.final",
    );
    this.#finalBG = device.createBindGroup({
      layout: this.#pFinal.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: this.#partials } },
        { binding: 1, resource: { buffer: this.result } },
        { binding: 2, resource: { buffer: this.#finalArgs } },
      ],
    });
  }

  /**
   * Records the norm computation: afterwards `result` = [min(1, maxNorm/(norm+1e-6)), norm].
   * maxNorm ≤ 0 or ∞ measures only (scale 1). maxNorm goes through queue.writeBuffer: submit before
   * recording again with a different value.
   */
  recordNorm(pass: GPUComputePassEncoder, maxNorm: number): void {
    if (Number.isNaN(maxNorm)) throw new Error("GradClipper: maxNorm is NaN");
    this.device.queue.writeBuffer(
      this.#finalArgs,
      0,
      kernel.pack({
        count: this.#partials.size / 4,
        base: 0,
        max_norm: Number.isFinite(maxNorm) ? maxNorm : 0,
      }),
    );
    pass.setPipeline(this.#pPartial);
    for (const p of this.#pieces) {
      pass.setBindGroup(0, p.partialBG);
      pass.dispatchWorkgroups(p.workgroups);
    }
    pass.setPipeline(this.#pFinal);
    pass.setBindGroup(0, this.#finalBG);
    pass.dispatchWorkgroups(1);
  }

  /** Records g ← g·scale in place for every buffer (not needed when AdamW reads `result`). */
  recordScale(pass: GPUComputePassEncoder): void {
    pass.setPipeline(this.#pScale);
    for (const p of this.#pieces) {
      pass.setBindGroup(0, p.scaleBG);
      const [x, y] = grid1d(Math.ceil(p.chunk.count / WG));
      pass.dispatchWorkgroups(x, y);
    }
  }

  /** Norm + in-place scaling in one submit. */
  clip(maxNorm: number, scaleInPlace = true): void {
    const enc = this.device.createCommandEncoder({ label: "grad_norm" });
    const pass = enc.beginComputePass({ label: "grad_norm" });
    this.recordNorm(pass, maxNorm);
    if (scaleInPlace) this.recordScale(pass);
    pass.end();
    this.device.queue.submit([enc.finish()]);
  }

  /** Reads back { scale, norm } (a CPU round trip: do it when logging). */
  async read(): Promise<{ scale: number; norm: number }> {
    const [scale, norm] = await readF32(this.device, this.result, 2);
    return { scale, norm };
  }

  destroy(): void {
    for (const p of this.#pieces) p.args.destroy();
    this.#partials.destroy();
    this.#finalArgs.destroy();
    this.result.destroy();
  }
}
