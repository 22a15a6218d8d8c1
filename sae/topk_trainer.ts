// The TopK SAE step with sparse kernels: the encoder matmul is dense (it has to be), then per-row
// top-k (gpu/topk.ts), decode gathering K decoder rows per token, and a backward that touches only
// the active latents through a latent → entries index (shaders/sae_sparse.wgsl). Decode and
// backward cost O(N·K·d) instead of O(N·n·d).
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import { Matmul } from "../gpu/matmul.ts";
import { grid1d, loadShader, pipelineCache } from "../gpu/pipelines.ts";
import { TopK, TOPK_MAX_K } from "../gpu/topk.ts";
import type { GpuContext } from "../gpu/device.ts";
import { GpuSaeTrainer, type TrainerOptions } from "./gpu_trainer.ts";
import type { Sae } from "./types.ts";

const WG = 64;
type SparseEntry = "decode" | "dval" | "count" | "scan" | "scatter" | "sort" | "grad_w" | "grad_b";

interface Batch {
  n: number;
  x: GPUBuffer;
  xc: GPUBuffer;
  pre: GPUBuffer;
  idx: GPUBuffer;
  val: GPUBuffer;
  dval: GPUBuffer;
  xhat: GPUBuffer;
  dx: GPUBuffer;
  list: GPUBuffer;
  enc: Matmul;
  topk: TopK;
}

export class TopKGpuTrainer extends GpuSaeTrainer {
  readonly k: number;
  #batch: Batch | null = null;
  #index: { count: GPUBuffer; offs: GPUBuffer; cursor: GPUBuffer };

  constructor(gpu: GpuContext, sae: Sae, opts: TrainerOptions) {
    const { cfg } = sae;
    if (cfg.kind !== "topk") {
      throw new Error(`the sparse TopK trainer trains topk SAEs, not ${cfg.kind}`);
    }
    if (!(cfg.k && cfg.k >= 1 && cfg.k <= Math.min(TOPK_MAX_K, cfg.dSae))) {
      throw new RangeError(
        `topk SAE: k must be in [1, min(${TOPK_MAX_K}, d_sae=${cfg.dSae})], got ${cfg.k}`,
      );
    }
    super(gpu, sae, opts);
    this.k = cfg.k;
    const m = cfg.dSae;
    this.#index = {
      count: createBuffer(this.device, m * 4, "topk.count"),
      offs: createBuffer(this.device, (m + 1) * 4, "topk.offs"),
      cursor: createBuffer(this.device, m * 4, "topk.cursor"),
    };
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    this.freeBatch();
    const d = this.dIn, m = this.dSae, k = this.k, dev = this.device;
    const buf = (values: number, label: string) => createBuffer(dev, values * 4, label);
    this.#batch = {
      n,
      x: buf(n * d, "topk.x"),
      xc: buf(n * d, "topk.xc"),
      pre: buf(n * m, "topk.pre"),
      idx: buf(n * k, "topk.idx"),
      val: buf(n * k, "topk.val"),
      dval: buf(n * k, "topk.dval"),
      xhat: buf(n * d, "topk.xhat"),
      dx: buf(n * d, "topk.dx"),
      list: buf(n * k, "topk.list"),
      enc: new Matmul(dev, { M: n, N: m, K: d }, true),
      topk: new TopK(dev, { rows: n, cols: m, k }),
    };
    return this.#batch;
  }

  protected freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.xc, b.pre, b.idx, b.val, b.dval, b.xhat, b.dx, b.list]) x.destroy();
    b.enc.destroy();
    b.topk.destroy();
    this.#batch = null;
  }

  #sparse(
    pass: GPUComputePassEncoder,
    e: SparseEntry,
    bufs: GPUBuffer[],
    threads: number,
    n: number,
    transposed = false,
  ): void {
    const p = pipelineCache(this.device).get(
      loadShader("sae_sparse"),
      e,
      e === "scan" ? {} : {
        WG,
      },
      `sae_sparse.${e}`,
    );
    const words = new Uint32Array([n, this.dIn, this.dSae, this.k, transposed ? 1 : 0, 0, 0, 0]);
    const u = this.uniform(`sparse.${e}${transposed ? ".t" : ""}`, words.buffer);
    pass.setPipeline(p);
    pass.setBindGroup(
      0,
      this.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [...bufs, u].map((buffer, binding) => ({ binding, resource: { buffer } })),
      }),
    );
    const [x, y] = e === "scan" ? [1, 1] : grid1d(Math.ceil(threads / WG));
    pass.dispatchWorkgroups(x, y);
  }

  async forward(x: Float32Array, n: number) {
    const d = this.dIn, P = this.params;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    this.pass("sae.forward", (pass) => {
      this.runDense(pass, "center", "center", [b.x, P.b_dec, b.xc], n * d, { rows: n, cols: d });
      b.enc.record(pass, b.xc, P.W_enc, b.pre, P.b_enc);
      b.topk.record(pass, b.pre, b.idx, b.val);
      this.#sparse(pass, "decode", [b.idx, b.val, P.W_dec, P.b_dec, b.xhat], n * d, n);
    });
    const xhat = await readF32(this.device, b.xhat, n * d);
    const val = await readF32(this.device, b.val, n * this.k);
    let active = 0;
    for (const v of val) if (v > 0) active++;
    return { xhat, mse: this.mseOf(x, xhat), l0: active / n };
  }

  async backwardAndStep(
    o: { wMse: number; gExt: Float32Array | null; wExt: number; lr: number },
  ) {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    const n = b.n, d = this.dIn, m = this.dSae, k = this.k, P = this.params, G = this.grads;
    const I = this.#index;
    if (o.gExt && o.gExt.length !== n * d) {
      throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
    }
    write(this.device, b.dx, o.gExt ?? new Float32Array(n * d));
    const enc = this.device.createCommandEncoder({ label: "sae.backward" });
    enc.clearBuffer(I.count);
    enc.clearBuffer(I.cursor);
    const pass = enc.beginComputePass({ label: "sae.backward" });
    this.runDense(pass, "dxhat", "dxhat", [b.xhat, b.x, b.dx], n * d, {
      rows: n,
      cols: d,
      a: o.wMse * 2 / (n * d),
      b: o.gExt ? o.wExt : 0,
    });
    this.#sparse(pass, "dval", [b.idx, b.val, b.dx, P.W_dec, b.dval], n * k, n);
    this.#sparse(pass, "count", [b.idx, b.val, I.count], n * k, n);
    this.#sparse(pass, "scan", [I.count, I.offs], 1, n);
    this.#sparse(pass, "scatter", [b.idx, b.val, I.offs, I.cursor, b.list], n * k, n);
    this.#sparse(pass, "sort", [I.offs, b.list], m, n);
    this.#sparse(pass, "grad_w", [I.offs, b.list, b.val, b.dx, G.W_dec], m * d, n);
    this.#sparse(pass, "grad_w", [I.offs, b.list, b.dval, b.xc, G.W_enc], m * d, n, true);
    this.#sparse(pass, "grad_b", [I.offs, b.list, b.dval, G.b_enc], m, n);
    // b_dec enters both the decoder output and the encoder input.
    this.runDense(pass, "col_sum", "dxsum", [b.dx, b.dx, G.b_dec], d, { rows: n, cols: d });
    this.runDense(pass, "bdec_grad", "bdec", [P.W_enc, G.b_enc, G.b_dec], d, { rows: d, cols: m });
    this.firing.record(pass, n, { kind: "sparse", idx: b.idx, val: b.val, k });
    this.firing.recordDeadCount(pass);
    pass.end();
    this.gpu.assertAlive();
    this.device.queue.submit([enc.finish()]);
    const { gradNorm, dead } = await this.optimizerStep(o.lr);
    return { gradNorm, aux: 0, dead };
  }

  override release(): void {
    super.release();
    for (const b of Object.values(this.#index)) b.destroy();
  }
}
