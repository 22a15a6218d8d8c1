// A GPU SAE trainer on dense kernels (shaders/matmul.wgsl, shaders/sae_dense.wgsl): ReLU with the
// decoder-norm-weighted L1; BatchTopK (shaders/batch_topk.wgsl: the K·N largest over the batch while
// training, a running threshold at inference); JumpReLU with its θ trained by the straight-through
// estimator and an L0 penalty (shaders/jumprelu.wgsl); and TopK computed densely (topk_trainer.ts
// makes the TopK step sparse; this path stays as its cross-check). The optimizer and state are
// gpu_trainer.ts's.
// x, x̂ and ∂KL/∂x̂ cross to the host once a step, which is where the LM runs on machines without a
// GPU (ORT's wasm EP).
import { createBuffer, readF32, readU32, write } from "../gpu/buffers.ts";
import { Matmul } from "../gpu/matmul.ts";
import type { GpuContext } from "../gpu/device.ts";
import { GpuSaeTrainer, type TrainerOptions, type TrainerState } from "./gpu_trainer.ts";
import type { Sae } from "./types.ts";

const K_MAX = 256;

export interface DenseTrainerOptions extends TrainerOptions {
  /** JumpReLU: bandwidth ε of the straight-through estimator (default 0.001, as the paper). */
  jumpBandwidth?: number;
  /** BatchTopK: EMA factor of the running inference threshold (default 0.999). */
  thresholdBeta?: number;
  /**
   * BatchTopK: training steps before the inference threshold starts to follow the batches (as
   * dictionary_learning's threshold_start_step); from then it is their running mean until it has
   * 1/(1−β) samples, then the EMA. Unset: the EMA from the first batch, as a fine-tune of a
   * trained SAE wants.
   */
  thresholdStartStep?: number;
}

const KINDS = ["relu", "topk", "batchtopk", "jumprelu"];

/** The float whose order-preserving key (shaders/topk.wgsl's key()) is k. */
function fromKey(k: number): number {
  const u = (k & 0x80000000) ? (k & 0x7fffffff) : (~k >>> 0);
  return new Float32Array(Uint32Array.of(u).buffer)[0];
}

interface Batch {
  n: number;
  x: GPUBuffer;
  xc: GPUBuffer;
  pre: GPUBuffer;
  h: GPUBuffer;
  xhat: GPUBuffer;
  dx: GPUBuffer;
  dh: GPUBuffer;
  l0: GPUBuffer;
  /** BatchTopK: selection state (8 u32) and the 256-bin histogram. */
  select: GPUBuffer;
  hist: GPUBuffer;
  enc: Matmul;
  dec: Matmul;
  dhMm: Matmul;
  gEnc: Matmul;
  gDec: Matmul;
}

export class DenseGpuTrainer extends GpuSaeTrainer {
  #batch: Batch | null = null;
  #scratch: { norms: GPUBuffer; hsum: GPUBuffer };
  /** BatchTopK's running threshold (host copy of params.threshold); < 0 until the first batch. */
  #threshold = -1;
  /** BatchTopK: training forwards so far (the optimizer's step count after a restore). */
  #trainSteps = 0;

  constructor(gpu: GpuContext, sae: Sae, readonly denseOpts: DenseTrainerOptions) {
    const { cfg } = sae;
    if (!KINDS.includes(cfg.kind)) {
      throw new Error(`the dense GPU trainer trains ${KINDS.join(", ")} SAEs, not ${cfg.kind}`);
    }
    if (cfg.kind === "topk" && !(cfg.k && cfg.k >= 1 && cfg.k <= K_MAX)) {
      throw new RangeError(`topk SAE: k must be in [1, ${K_MAX}], got ${cfg.k}`);
    }
    if (cfg.kind === "batchtopk" && !(cfg.k && cfg.k >= 1 && cfg.k <= cfg.dSae)) {
      throw new RangeError(`batchtopk SAE: k must be in [1, d_sae=${cfg.dSae}], got ${cfg.k}`);
    }
    const th = sae.weights.threshold;
    const thSize = cfg.kind === "jumprelu" ? cfg.dSae : 1;
    if ((cfg.kind === "jumprelu" || cfg.kind === "batchtopk") && th?.length !== thSize) {
      throw new RangeError(
        `${cfg.kind} SAE: threshold must hold ${thSize} value(s), found ${th?.length ?? "none"}`,
      );
    }
    super(gpu, sae, denseOpts);
    if (cfg.kind === "batchtopk") this.#threshold = th![0];
    const n = cfg.dSae;
    this.#scratch = {
      norms: createBuffer(this.device, n * 4, "dense.norms"),
      hsum: createBuffer(this.device, 2 * n * 4, "dense.hsum-norms"),
    };
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    this.freeBatch();
    const d = this.dIn, m = this.sae.cfg.dSae, dev = this.device;
    const limit = dev.limits.maxStorageBufferBindingSize;
    if (n * m * 4 > limit) {
      throw new RangeError(
        `a batch of ${n} tokens × d_sae ${m} needs ${n * m * 4} bytes per activation buffer, ` +
          `over this adapter's storage binding limit of ${limit}: use at most ` +
          `${Math.floor(limit / (m * 4))} tokens a step with a ${this.sae.cfg.kind} SAE`,
      );
    }
    const buf = (floats: number, label: string) => createBuffer(dev, floats * 4, label);
    this.#batch = {
      n,
      x: buf(n * d, "dense.x"),
      xc: buf(n * d, "dense.xc"),
      pre: buf(n * m, "dense.pre"),
      h: buf(n * m, "dense.h"),
      xhat: buf(n * d, "dense.xhat"),
      dx: buf(n * d, "dense.dx"),
      dh: buf(n * m, "dense.dh"),
      l0: buf(n, "dense.l0"),
      select: buf(8, "batchtopk.state"),
      hist: buf(256, "batchtopk.hist"),
      enc: new Matmul(dev, { M: n, N: m, K: d }, true),
      dec: new Matmul(dev, { M: n, N: d, K: m }, true),
      dhMm: new Matmul(dev, { M: n, N: m, K: d, transB: true }),
      gEnc: new Matmul(dev, { M: d, N: m, K: n, transA: true }),
      gDec: new Matmul(dev, { M: m, N: d, K: n, transA: true }),
    };
    return this.#batch;
  }

  protected freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.xc, b.pre, b.h, b.xhat, b.dx, b.dh, b.l0, b.select, b.hist]) {
      x.destroy();
    }
    for (const mm of [b.enc, b.dec, b.dhMm, b.gEnc, b.gDec]) mm.destroy();
    this.#batch = null;
  }

  #activation(pass: GPUComputePassEncoder, b: Batch, inference: boolean): void {
    const { kind, k } = this.sae.cfg;
    const n = b.n, m = this.dSae, count = n * m;
    if (kind === "topk") {
      this.runDense(pass, "topk_relu", "act", [b.pre, b.pre, b.h], n, { rows: n, cols: m, k });
    } else if (kind === "relu") {
      this.runDense(pass, "relu", "act", [b.pre, b.pre, b.h], count, { rows: n, cols: m });
    } else if (kind === "jumprelu" || inference) {
      const cols = kind === "jumprelu" ? m : 1;
      const words = new Uint32Array([count, 0, cols, 0]).buffer;
      this.runEntry(
        pass,
        "batch_topk",
        "threshold",
        [b.pre, this.params.threshold!, b.h],
        words,
        count,
      );
    } else {
      const words = new Uint32Array([count, k! * n, m, 0]).buffer;
      for (let round = 0; round < 4; round++) {
        this.runEntry(pass, "batch_topk", "hist", [b.pre, b.select, b.hist], words, count);
        this.runEntry(pass, "batch_topk", "pick", [b.select, b.hist], words, "one workgroup");
      }
      this.runEntry(pass, "batch_topk", "mask", [b.pre, b.select, b.h], words, count);
    }
  }

  async forward(x: Float32Array, n: number, inference = false) {
    const d = this.dIn, m = this.sae.cfg.dSae, P = this.params;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    const selecting = this.sae.cfg.kind === "batchtopk" && !inference;
    if (selecting) write(this.device, b.select, new Uint32Array(8));
    if (selecting) write(this.device, b.hist, new Uint32Array(256));
    this.pass("sae.forward", (pass) => {
      this.runDense(pass, "center", "center", [b.x, P.b_dec, b.xc], n * d, { rows: n, cols: d });
      b.enc.record(pass, b.xc, P.W_enc, b.pre, P.b_enc);
      this.#activation(pass, b, inference);
      b.dec.record(pass, b.h, P.W_dec, b.xhat, P.b_dec);
      this.runDense(pass, "count_active", "l0", [b.h, b.h, b.l0], n, { rows: n, cols: m });
    });
    const xhat = await readF32(this.device, b.xhat, n * d);
    const l0s = await readF32(this.device, b.l0, n);
    if (selecting) await this.#updateThreshold(b);
    return { xhat, mse: this.mseOf(x, xhat), l0: l0s.reduce((a, v) => a + v, 0) / n };
  }

  /** BatchTopK: EMA of the smallest selected activation, the threshold used at inference. */
  async #updateThreshold(b: Batch): Promise<void> {
    const step = this.#trainSteps++;
    const start = this.denseOpts.thresholdStartStep;
    // The first batches' selections are far from the trained SAE's: a threshold that starts
    // there is dominated by them on a short run (inference L0 well below k).
    if (start !== undefined && step < start) return;
    const [T, , , , positives] = await readU32(this.device, b.select, 5);
    if (!positives) return;
    const minAct = fromKey(T);
    let beta = this.denseOpts.thresholdBeta ?? 0.999;
    if (start !== undefined) beta = Math.min(beta, 1 - 1 / (step - start + 1));
    this.#threshold = this.#threshold < 0 ? minAct : beta * this.#threshold + (1 - beta) * minAct;
    write(this.device, this.params.threshold!, Float32Array.of(this.#threshold));
  }

  backward(
    o: { wMse: number; gExt: Float32Array | null; wExt: number; l1?: number },
  ): Promise<{ aux: number }> {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    const n = b.n,
      d = this.dIn,
      m = this.sae.cfg.dSae,
      P = this.params,
      G = this.grads,
      S = this.#scratch;
    const { kind } = this.sae.cfg;
    // relu: λ of the L1 term; jumprelu: λ of the L0 term (both held by the L1 controller).
    const lambda = kind === "relu" || kind === "jumprelu"
      ? (o.l1 ?? this.sae.cfg.l1Coefficient ?? 0)
      : 0;
    const l1 = kind === "relu" ? lambda : 0;
    if (o.gExt) {
      if (o.gExt.length !== n * d) {
        throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
      }
      write(this.device, b.dx, o.gExt);
    } else {
      write(this.device, b.dx, new Float32Array(n * d));
    }
    this.pass("sae.backward", (pass) => {
      this.runDense(pass, "dxhat", "dxhat", [b.xhat, b.x, b.dx], n * d, {
        rows: n,
        cols: d,
        a: o.wMse * 2 / (n * d),
        b: o.gExt ? o.wExt : 0,
      });
      b.dhMm.record(pass, b.dx, P.W_dec, b.dh);
      if (kind === "jumprelu") {
        const words = new ArrayBuffer(32);
        new Uint32Array(words, 0, 4).set([n, m, 0, 0]);
        new Float32Array(words, 16, 4).set([
          this.denseOpts.jumpBandwidth ?? 1e-3,
          lambda / n,
          0,
          0,
        ]);
        this.runEntry(
          pass,
          "jumprelu",
          "theta_grad",
          [b.pre, b.dh, P.threshold!, G.threshold!],
          words,
          m,
        );
      }
      this.runDense(pass, "row_norms", "norms", [P.W_dec, P.W_dec, S.norms], m, {
        rows: m,
        cols: d,
      });
      // With the L1 penalty λ·Σ h_j‖W_dec,j‖ (relu), ∂/∂h_j gains λ‖W_dec,j‖.
      this.runDense(pass, "mask_grad", "mask", [b.h, S.norms, b.dh], n * m, {
        rows: n,
        cols: m,
        a: l1 / n,
      });
      b.gEnc.record(pass, b.xc, b.dh, G.W_enc);
      this.runDense(pass, "col_sum", "benc", [b.dh, b.dh, G.b_enc], m, { rows: n, cols: m });
      b.gDec.record(pass, b.h, b.dx, G.W_dec);
      this.runDense(pass, "col_sum", "dxsum", [b.dx, b.dx, G.b_dec], d, { rows: n, cols: d });
      this.runDense(pass, "bdec_grad", "bdec", [P.W_enc, G.b_enc, G.b_dec], d, {
        rows: d,
        cols: m,
      });
    });
    if (l1 > 0) {
      // ∂/∂W_dec,j of λ·(Σ_t h_tj)·‖W_dec,j‖/n: needs Σ_t h and the norms side by side.
      this.pass("sae.l1", (pass) => {
        this.runDense(pass, "col_sum", "hsum", [b.h, b.h, S.hsum], m, { rows: n, cols: m });
      });
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(S.norms, 0, S.hsum, m * 4, m * 4);
      this.device.queue.submit([enc.finish()]);
      this.pass("sae.l1dec", (pass) => {
        this.runDense(pass, "l1_dec", "l1dec", [P.W_dec, S.hsum, G.W_dec], m * d, {
          rows: m,
          cols: d,
          a: l1 / n,
        });
      });
    }
    this.pass("sae.firing", (pass) => {
      this.firing.record(pass, n, { kind: "dense", h: b.h, n: m });
      this.firing.recordDeadCount(pass);
    });
    return Promise.resolve({ aux: 0 });
  }

  override async restore(state: TrainerState): Promise<void> {
    await super.restore(state);
    const th = state.get("threshold");
    if (this.sae.cfg.kind === "batchtopk" && th) this.#threshold = th.data[0];
    this.#trainSteps = state.get("adam.t")?.data[0] ?? 0;
  }

  override release(): void {
    super.release();
    for (const b of Object.values(this.#scratch)) b.destroy();
  }
}
