// C = op(A)·op(B) (+ bias) on the GPU (shaders/matmul.wgsl), the workhorse of the dense SAE paths:
// encoder, dense decode, and every weight gradient.
import { align4, createBuffer } from "./buffers.ts";
import { loadShader, pipelineCache } from "./pipelines.ts";

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
}

const TM = 4, TN = 4, WG = 8;

/** One matmul of a fixed shape; bind groups are made per call (buffers change between uses). */
export class Matmul {
  readonly pipeline: GPUComputePipeline;
  #dims: GPUBuffer;
  #noBias: GPUBuffer;

  constructor(readonly device: GPUDevice, readonly shape: MatmulShape, readonly hasBias = false) {
    const { M, N, K } = shape;
    for (const [k, v] of Object.entries({ M, N, K })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`matmul: ${k} must be a positive integer, got ${v}`);
      }
    }
    this.pipeline = pipelineCache(device).get(loadShader("matmul"), "main", {
      TRANS_A: shape.transA ? 1 : 0,
      TRANS_B: shape.transB ? 1 : 0,
      HAS_BIAS: hasBias ? 1 : 0,
      WG_X: WG,
      WG_Y: WG,
    }, "matmul");
    this.#dims = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(this.#dims, 0, new Uint32Array([M, N, K, 0]));
    this.#noBias = createBuffer(device, 4, "matmul.no-bias");
  }

  /** Records C = op(A)·op(B) (+ bias) into `pass`. */
  record(
    pass: GPUComputePassEncoder,
    A: GPUBuffer,
    B: GPUBuffer,
    C: GPUBuffer,
    bias?: GPUBuffer,
  ): void {
    const { M, N, K } = this.shape;
    const need = (buf: GPUBuffer, floats: number, what: string) => {
      if (buf.size < align4(floats * 4)) {
        throw new RangeError(
          `matmul: ${what} holds ${buf.size / 4} floats, needs ${floats} for M=${M} N=${N} K=${K}`,
        );
      }
    };
    need(A, M * K, "A");
    need(B, K * N, "B");
    need(C, M * N, "C");
    if (this.hasBias !== (bias !== undefined)) {
      throw new Error("matmul: bias given to a pipeline built without one, or missing");
    }
    if (bias) need(bias, N, "bias");
    const bg = this.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: A } },
        { binding: 1, resource: { buffer: B } },
        { binding: 2, resource: { buffer: bias ?? this.#noBias } },
        { binding: 3, resource: { buffer: C } },
        { binding: 4, resource: { buffer: this.#dims } },
      ],
    });
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(Math.ceil(N / (TN * WG)), Math.ceil(M / (TM * WG)));
  }

  destroy(): void {
    this.#dims.destroy();
    this.#noBias.destroy();
  }
}
