// The decoder constraint step (shaders/decoder_norm.wgsl): project each W_dec row's component out
// of its gradient before the optimizer, renormalise rows to unit norm after it.
import { type Chunk, chunkBinding, chunkLimits, f32Chunks } from "./chunks.ts";
import { grid1d, loadShader, pipelineCache } from "./pipelines.ts";

const WG = 64;

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
    const code = loadShader("decoder_norm");
    const cache = pipelineCache(device);
    this.#pRemove = cache.get(code, "remove_parallel", { WG }, "decoder_norm.remove_parallel");
    this.#pNorm = cache.get(code, "normalize", { WG }, "decoder_norm.normalize");
    this.#chunks = f32Chunks(dSae * dIn, chunkLimits(device, opts.maxBindingBytes), dIn)
      .filter((c) => c.count > 0);
    this.#args = this.#chunks.map((c) => {
      const b = device.createBuffer({
        label: "decoder_norm.args",
        size: 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(b, 0, new Uint32Array([c.count / dIn, dIn, 0, 0]));
      return b;
    });
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
