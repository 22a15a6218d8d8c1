// Batch metrics of an SAE on the GPU (shaders/metrics.wgsl). Definitions, over N tokens x_t ∈ R^d
// with reconstructions x̂_t and batch mean μ = (1/N) Σ_t x_t:
//   mse                 Σ‖x−x̂‖² / (N·d)                  (mean over elements)
//   mseSumD             Σ‖x−x̂‖² / N                      (summed over d, mean over tokens)
//   fvu                 Σ‖x−x̂‖² / Σ‖x−μ‖²                (variance about the batch mean, not about
//                                                         zero: SAELens issue #659)
//   explainedVariance   1 − fvu
//   cosSim              mean_t x·x̂ / (max(‖x‖,1e-8)·max(‖x̂‖,1e-8))
//   l2Ratio             mean_t ‖x̂‖/‖x‖                   (‖x‖ < 1e-4 divides by 1, as SAELens)
//   relativeReconstructionBias  E‖x̂‖² / E[x·x̂]          (Rajamanoharan et al. 2024, Eq. 10, as
//                        SAELens and SAEBench compute it: γ = argmin_γ E‖x̂/γ − x‖²; γ < 1 is
//                        shrinkage, 1 is unbiased)
//   l0                  mean_t #{i : h_t,i ≠ 0}
// Firing: per-latent counts of tokens with h ≠ 0 accumulated until resetWindow(), and tokens since
// each latent last fired; a latent is dead once that reaches the window.
import { createBuffer, readF32, readU32 } from "./buffers.ts";
import { Kernel, requireValues } from "./kernel.ts";
import { grid1d } from "./pipelines.ts";

const WG = 64;
const kernel = new Kernel({
  name: "metrics",
  struct: "Args",
  fields: { n_tokens: "u32", d: "u32", width: "u32", n_latents: "u32", dead_window: "u32" },
  wg: WG,
});
const STATS = 8;

export const METRIC_NAMES = [
  "mse",
  "mseSumD",
  "fvu",
  "explainedVariance",
  "cosSim",
  "l2Ratio",
  "relativeReconstructionBias",
  "l0",
] as const;
export type MetricName = typeof METRIC_NAMES[number];
export type Metrics = Record<MetricName, number>;

/** Latent activations of N tokens: dense h [N,n], or K (index, value) pairs per token. */
export type Activations =
  | { kind: "dense"; h: GPUBuffer; n: number }
  | { kind: "sparse"; idx: GPUBuffer; val: GPUBuffer; k: number };

function argsBuffer(device: GPUDevice, label: string): GPUBuffer {
  return kernel.uniformBuffer(
    device,
    { n_tokens: 0, d: 0, width: 0, n_latents: 0, dead_window: 0 },
    label,
  );
}

function writeArgs(
  device: GPUDevice,
  buf: GPUBuffer,
  a: { nTokens: number; d?: number; width?: number; nLatents?: number; deadWindow?: number },
): void {
  device.queue.writeBuffer(
    buf,
    0,
    kernel.pack({
      n_tokens: a.nTokens,
      d: a.d ?? 0,
      width: a.width ?? 0,
      n_latents: a.nLatents ?? 0,
      dead_window: Math.min(a.deadWindow ?? 0, 0xffffffff),
    }),
  );
}

function bind(device: GPUDevice, p: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
  return kernel.bindGroup(device, p, buffers);
}

function checkBinding(device: GPUDevice, what: string, bytes: number): void {
  const max = device.limits.maxStorageBufferBindingSize;
  if (bytes > max) {
    throw new Error(
      `metrics: ${what} is ${bytes} bytes, over this adapter's ${max}-byte storage binding ` +
        `limit; pass fewer tokens per call`,
    );
  }
}

export class ReconstructionMetrics {
  /** The metrics, f32 in METRIC_NAMES order, after a recorded pass has run. */
  readonly out: GPUBuffer;
  #mean: GPUBuffer;
  #rows: GPUBuffer;
  #args: GPUBuffer;
  #pMean: GPUComputePipeline;
  #pRows: GPUComputePipeline;
  #pFinal: GPUComputePipeline;

  constructor(readonly device: GPUDevice, readonly dIn: number, readonly maxTokens: number) {
    this.#pMean = kernel.pipeline(device, "col_mean");
    this.#pRows = kernel.pipeline(device, "row_stats");
    this.#pFinal = kernel.pipeline(device, "finalize");
    this.#mean = createBuffer(device, dIn * 4, "metrics.mean");
    this.#rows = createBuffer(device, maxTokens * STATS * 4, "metrics.rows");
    this.out = createBuffer(device, STATS * 4, "metrics.out");
    this.#args = argsBuffer(device, "metrics.args");
  }

  /**
   * Records the metrics of x, x̂ [nTokens, dIn] and their activations. Arguments go through
   * queue.writeBuffer: submit before recording this object again.
   */
  record(
    pass: GPUComputePassEncoder,
    io: { x: GPUBuffer; xHat: GPUBuffer; nTokens: number; acts: Activations },
  ): void {
    const { x, xHat, nTokens, acts } = io;
    if (!(nTokens >= 1 && nTokens <= this.maxTokens)) {
      throw new Error(`metrics: nTokens ${nTokens} is outside 1..${this.maxTokens}`);
    }
    const width = acts.kind === "dense" ? acts.n : acts.k;
    const vals = acts.kind === "dense" ? acts.h : acts.val;
    const shape = `nTokens=${nTokens} dIn=${this.dIn} width=${width}`;
    requireValues("metrics", "x", x, nTokens * this.dIn, shape);
    requireValues("metrics", "xHat", xHat, nTokens * this.dIn, shape);
    requireValues("metrics", acts.kind === "dense" ? "h" : "val", vals, nTokens * width, shape);
    checkBinding(this.device, "x", nTokens * this.dIn * 4);
    checkBinding(this.device, "activations", nTokens * width * 4);
    writeArgs(this.device, this.#args, { nTokens, d: this.dIn, width });
    const d = this.device;
    pass.setPipeline(this.#pMean);
    pass.setBindGroup(0, bind(d, this.#pMean, [x, this.#mean, this.#args]));
    pass.dispatchWorkgroups(Math.ceil(this.dIn / WG));
    pass.setPipeline(this.#pRows);
    pass.setBindGroup(
      0,
      bind(d, this.#pRows, [x, xHat, this.#mean, vals, this.#rows, this.#args]),
    );
    const [gx, gy] = grid1d(nTokens);
    pass.dispatchWorkgroups(gx, gy);
    pass.setPipeline(this.#pFinal);
    pass.setBindGroup(0, bind(d, this.#pFinal, [this.#rows, this.out, this.#args]));
    pass.dispatchWorkgroups(1);
  }

  /** Reads the metrics back (a CPU round trip: do it when logging). */
  async read(): Promise<Metrics> {
    const v = await readF32(this.device, this.out, STATS);
    return Object.fromEntries(METRIC_NAMES.map((k, i) => [k, v[i]])) as Metrics;
  }

  /** Records, submits and reads in one call. */
  async compute(io: Parameters<ReconstructionMetrics["record"]>[1]): Promise<Metrics> {
    const enc = this.device.createCommandEncoder({ label: "metrics" });
    const pass = enc.beginComputePass({ label: "metrics" });
    this.record(pass, io);
    pass.end();
    this.device.queue.submit([enc.finish()]);
    return await this.read();
  }

  destroy(): void {
    for (const b of [this.#mean, this.#rows, this.out, this.#args]) b.destroy();
  }
}

export class FiringTracker {
  /** u32 [dSae]: tokens on which each latent fired since the last resetWindow(). */
  readonly windowCounts: GPUBuffer;
  /** u32 [dSae]: tokens seen since each latent last fired (saturates at 2³²−1). */
  readonly tokensSinceFired: GPUBuffer;
  /** u32 [1]: dead latents, after recordDeadCount. */
  readonly deadOut: GPUBuffer;
  #batch: GPUBuffer;
  #args: GPUBuffer;
  #deadArgs: GPUBuffer;
  #p: Record<"dense" | "zero" | "sparse" | "update" | "dead", GPUComputePipeline>;

  /** A latent is dead once `deadWindowTokens` tokens have passed without it firing. */
  constructor(
    readonly device: GPUDevice,
    readonly dSae: number,
    readonly deadWindowTokens: number,
  ) {
    const get = (e: string) => kernel.pipeline(device, e);
    this.#p = {
      dense: get("fire_dense"),
      zero: get("fire_zero"),
      sparse: get("fire_sparse"),
      update: get("fire_update"),
      dead: get("dead_count"),
    };
    this.windowCounts = createBuffer(device, dSae * 4, "firing.window");
    this.tokensSinceFired = createBuffer(device, dSae * 4, "firing.since");
    this.deadOut = createBuffer(device, 4, "firing.dead");
    this.#batch = createBuffer(device, dSae * 4, "firing.batch");
    this.#args = argsBuffer(device, "firing.args");
    this.#deadArgs = argsBuffer(device, "firing.dead-args");
    writeArgs(device, this.#deadArgs, { nTokens: 0, nLatents: dSae, deadWindow: deadWindowTokens });
  }

  /** Records one batch's firings. Submit before recording this object again. */
  record(pass: GPUComputePassEncoder, nTokens: number, acts: Activations): void {
    if (!(nTokens >= 1)) throw new Error(`firing: nTokens ${nTokens} must be ≥ 1`);
    const d = this.device;
    const latents = grid1d(Math.ceil(this.dSae / WG));
    if (acts.kind === "dense") {
      if (acts.n !== this.dSae) {
        throw new Error(`firing: dense activations have ${acts.n} latents, expected ${this.dSae}`);
      }
      checkBinding(d, "activations", nTokens * acts.n * 4);
      writeArgs(d, this.#args, { nTokens, nLatents: this.dSae });
      pass.setPipeline(this.#p.dense);
      pass.setBindGroup(
        0,
        bind(d, this.#p.dense, [acts.h, this.windowCounts, this.tokensSinceFired, this.#args]),
      );
      pass.dispatchWorkgroups(latents[0], latents[1]);
      return;
    }
    checkBinding(d, "activations", nTokens * acts.k * 4);
    writeArgs(d, this.#args, { nTokens, width: acts.k, nLatents: this.dSae });
    pass.setPipeline(this.#p.zero);
    pass.setBindGroup(0, bind(d, this.#p.zero, [this.#batch, this.#args]));
    pass.dispatchWorkgroups(latents[0], latents[1]);
    pass.setPipeline(this.#p.sparse);
    pass.setBindGroup(0, bind(d, this.#p.sparse, [acts.idx, acts.val, this.#batch, this.#args]));
    const [ex, ey] = grid1d(Math.ceil(nTokens * acts.k / WG));
    pass.dispatchWorkgroups(ex, ey);
    pass.setPipeline(this.#p.update);
    pass.setBindGroup(
      0,
      bind(d, this.#p.update, [this.#batch, this.windowCounts, this.tokensSinceFired, this.#args]),
    );
    pass.dispatchWorkgroups(latents[0], latents[1]);
  }

  /** Records the dead-latent count into deadOut. */
  recordDeadCount(pass: GPUComputePassEncoder): void {
    pass.setPipeline(this.#p.dead);
    pass.setBindGroup(
      0,
      bind(this.device, this.#p.dead, [this.tokensSinceFired, this.deadOut, this.#deadArgs]),
    );
    pass.dispatchWorkgroups(1);
  }

  /** Zeroes the window counts (tokens since fired carry on). */
  resetWindow(): void {
    this.device.queue.writeBuffer(this.windowCounts, 0, new Uint32Array(this.dSae));
  }

  async readDead(): Promise<number> {
    return (await readU32(this.device, this.deadOut, 1))[0];
  }

  async readWindowCounts(): Promise<Uint32Array> {
    return await readU32(this.device, this.windowCounts, this.dSae);
  }

  async readTokensSinceFired(): Promise<Uint32Array> {
    return await readU32(this.device, this.tokensSinceFired, this.dSae);
  }

  destroy(): void {
    for (
      const b of [
        this.windowCounts,
        this.tokensSinceFired,
        this.deadOut,
        this.#batch,
        this.#args,
        this.#deadArgs,
      ]
    ) b.destroy();
  }
}
