// Per-row top-k (shaders/topk.wgsl): (index, value) pairs of the k largest entries of each row, in
// index order, values through ReLU unless told otherwise. Two kernels select the same entries: a
// radix select with a workgroup per row, and, on CPU adapters for k ≤ TOPK_ROW_MAX_K, a scan with
// one invocation per row (llvmpipe, 1024 rows of 2048, k 16: 33 ms against the radix select's 122).
import { isSoftwareDevice } from "./device.ts";
import { Kernel, requireValues } from "./kernel.ts";

export const TOPK_MAX_K = 256;
/** Largest k of the one-invocation-per-row kernel (the shader's ROW_K_MAX). */
export const TOPK_ROW_MAX_K = 64;
/** "radix": a workgroup per row; "per_row": one invocation per row (k ≤ TOPK_ROW_MAX_K). */
export type TopKVariant = "radix" | "per_row";
export const TOPK_MAX_COLS = 1 << 20;

const kernel = new Kernel({
  name: "topk",
  struct: "Args",
  fields: { rows: "u32", cols: "u32", k: "u32" },
  wg: 64,
});

export class TopK {
  readonly pipeline: GPUComputePipeline;
  readonly variant: TopKVariant;
  #args: GPUBuffer;

  constructor(
    readonly device: GPUDevice,
    readonly shape: { rows: number; cols: number; k: number },
    /** variant: instead of the adapter's choice (tests run both). */
    opts: { relu?: boolean; variant?: TopKVariant } = {},
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
    const relu = opts.relu === false ? 0 : 1;
    this.variant = opts.variant ??
      (isSoftwareDevice(device) && k <= TOPK_ROW_MAX_K ? "per_row" : "radix");
    if (this.variant === "per_row") {
      if (k > TOPK_ROW_MAX_K) {
        throw new RangeError(`topk: the per_row kernel takes k ≤ ${TOPK_ROW_MAX_K}, got ${k}`);
      }
      this.pipeline = kernel.pipeline(device, "per_row", { WG: 64, RELU: relu });
    } else {
      // Wider rows get more invocations per row; the shader's scan arrays hold 256.
      const wg = cols >= 8192 ? 256 : cols >= 1024 ? 128 : 64;
      this.pipeline = kernel.pipeline(device, "main", { WG: wg, RELU: relu });
    }
    this.#args = kernel.uniformBuffer(device, { rows, cols, k });
  }

  /** Records the selection of `pre` [rows, cols] into idx (u32) and val (f32), both [rows, k]. */
  record(pass: GPUComputePassEncoder, pre: GPUBuffer, idx: GPUBuffer, val: GPUBuffer): void {
    const { rows, cols, k } = this.shape;
    const shape = `rows=${rows} cols=${cols} k=${k}`;
    requireValues("topk", "pre", pre, rows * cols, shape);
    requireValues("topk", "idx", idx, rows * k, shape);
    requireValues("topk", "val", val, rows * k, shape);
    const bindings = [pre, idx, val, this.#args];
    if (this.variant === "per_row") {
      kernel.dispatch(
        this.device,
        pass,
        this.pipeline,
        bindings,
        kernel.workgroups({
          threads: rows,
        }),
      );
      return;
    }
    // One workgroup per row; rows past 65535 go to y (the shader reads num_workgroups).
    const x = Math.min(rows, 65535);
    kernel.dispatch(this.device, pass, this.pipeline, bindings, [x, Math.ceil(rows / x)]);
  }

  destroy(): void {
    this.#args.destroy();
  }
}
