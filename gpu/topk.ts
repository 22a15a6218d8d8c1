// Per-row top-k (shaders/topk.wgsl): (index, value) pairs of the k largest entries of each row, in
// index order, values through ReLU unless told otherwise.
import { loadShader, pipelineCache } from "./pipelines.ts";

export const TOPK_MAX_K = 256;
export const TOPK_MAX_COLS = 1 << 20;

export class TopK {
  readonly pipeline: GPUComputePipeline;
  #args: GPUBuffer;

  constructor(
    readonly device: GPUDevice,
    readonly shape: { rows: number; cols: number; k: number },
    opts: { relu?: boolean } = {},
  ) {
    const { rows, cols, k } = shape;
    if (!(Number.isInteger(rows) && rows >= 1)) {
      throw new RangeError(`topk: rows must be a positive integer, got ${rows}`);
    }
    if (!(Number.isInteger(cols) && cols >= 1 && cols <= TOPK_MAX_COLS)) {
      throw new RangeError(`topk: cols must be in [1, ${TOPK_MAX_COLS}], got ${cols}`);
    }
    if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(TOPK_MAX_K, cols))) {
      throw new RangeError(`topk: k must be in [1, min(${TOPK_MAX_K}, cols=${cols})], got ${k}`);
    }
    // Wider rows get more invocations per row; the shader's scan arrays hold 256.
    const wg = cols >= 8192 ? 256 : cols >= 1024 ? 128 : 64;
    this.pipeline = pipelineCache(device).get(
      loadShader("topk"),
      "main",
      { WG: wg, RELU: opts.relu === false ? 0 : 1 },
      "topk",
    );
    this.#args = device.createBuffer({
      label: "topk.args",
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(this.#args, 0, new Uint32Array([rows, cols, k, 0]));
  }

  /** Records the selection of `pre` [rows, cols] into idx (u32) and val (f32), both [rows, k]. */
  record(pass: GPUComputePassEncoder, pre: GPUBuffer, idx: GPUBuffer, val: GPUBuffer): void {
    const { rows, cols, k } = this.shape;
    for (
      const [b, n, what] of [[pre, rows * cols, "pre"], [idx, rows * k, "idx"], [
        val,
        rows * k,
        "val",
      ]] as const
    ) {
      if (b.size < n * 4) {
        throw new RangeError(`topk: ${what} holds ${b.size / 4} values, needs ${n}`);
      }
    }
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(
      0,
      this.device.createBindGroup({
        layout: this.pipeline.getBindGroupLayout(0),
        entries: [pre, idx, val, this.#args].map((buffer, binding) => ({
          binding,
          resource: { buffer },
        })),
      }),
    );
    const x = Math.min(rows, 65535);
    pass.dispatchWorkgroups(x, Math.ceil(rows / x));
  }

  destroy(): void {
    this.#args.destroy();
  }
}
