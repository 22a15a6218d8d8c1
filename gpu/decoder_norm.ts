// The decoder constraint step (shaders/decoder_norm.wgsl): project each W_dec row's component out
// of its gradient before the optimizer, renormalise rows to unit norm after it.
import { type Chunk, chunkBinding, chunkLimits, f32Chunks } from "./chunks.ts";
import { Kernel, requireDims, requireValues } from "./kernel.ts";
import { grid1d } from "./pipelines.ts";

const WG = 64;
const kernel = new Kernel({
  name: "decoder_norm",
  struct: "Args",
  fields: { rows: "u32", d: "u32" },
  wg: WG,
});

export class DecoderNorm {
  #chunks: Chunk[];
  #args: GPUBuffer[];
  #pRemove: GPUComputePipeline;
  #pNorm: GPUComputePipeline;
  #normBGs: GPUBindGroup[];
  #removeBGs = new Map<GPUBuffer, GPUBindGroup[]>();

  /** W_dec is [dSae, dIn] row-major (SAELens), one row per latent. */
  constructor(
    readonly device: GPUDevice,
    readonly W_dec: GPUBuffer,
    readonly dSae: number,
    readonly dIn: number,
    opts: { maxBindingBytes?: number } = {},
  ) {
    requireDims("decoder_norm", { dSae, dIn });
    requireValues("decoder_norm", "W_dec", W_dec, dSae * dIn, `dSae=${dSae} dIn=${dIn}`);
    this.#pRemove = kernel.pipeline(device, "remove_parallel");
    this.#pNorm = kernel.pipeline(device, "normalize");
    this.#chunks = f32Chunks(dSae * dIn, chunkLimits(device, opts.maxBindingBytes), dIn)
      .filter((c) => c.count > 0);
    this.#args = this.#chunks.map((c) =>
      kernel.uniformBuffer(device, { rows: c.count / dIn, d: dIn })
    );
    this.#normBGs = this.#chunks.map((c, i) =>
      device.createBindGroup({
        layout: this.#pNorm.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: chunkBinding(W_dec, c) },
          { binding: 1, resource: { buffer: this.#args[i] } },
        ],
      })
    );
  }

  /** Records g_i ← g_i − (g_i·w_i/‖w_i‖²)·w_i for every row, on `gradW_dec` in place. */
  recordRemoveParallel(pass: GPUComputePassEncoder, gradW_dec: GPUBuffer): void {
    let bgs = this.#removeBGs.get(gradW_dec);
    if (!bgs) {
      const shape = `dSae=${this.dSae} dIn=${this.dIn}`;
      requireValues("decoder_norm", "gradW_dec", gradW_dec, this.dSae * this.dIn, shape);
      bgs = this.#chunks.map((c, i) =>
        this.device.createBindGroup({
          layout: this.#pRemove.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: chunkBinding(this.W_dec, c) },
            { binding: 1, resource: chunkBinding(gradW_dec, c) },
            { binding: 2, resource: { buffer: this.#args[i] } },
          ],
        })
      );
      this.#removeBGs.set(gradW_dec, bgs);
    }
    pass.setPipeline(this.#pRemove);
    this.#chunks.forEach((c, i) => {
      pass.setBindGroup(0, bgs[i]);
      const [x, y] = grid1d(c.count / this.dIn);
      pass.dispatchWorkgroups(x, y);
    });
  }

  /** Records w_i ← w_i/‖w_i‖ for every row of W_dec, in place. */
  recordNormalize(pass: GPUComputePassEncoder): void {
    pass.setPipeline(this.#pNorm);
    this.#chunks.forEach((c, i) => {
      pass.setBindGroup(0, this.#normBGs[i]);
      const [x, y] = grid1d(c.count / this.dIn);
      pass.dispatchWorkgroups(x, y);
    });
  }

  /** Runs `record` in its own submit (tests, one-off renormalisation after init or load). */
  run(record: (pass: GPUComputePassEncoder) => void): void {
    const enc = this.device.createCommandEncoder({ label: "decoder_norm" });
    const pass = enc.beginComputePass({ label: "decoder_norm" });
    record(pass);
    pass.end();
    this.device.queue.submit([enc.finish()]);
  }

  destroy(): void {
    for (const b of this.#args) b.destroy();
  }
}
