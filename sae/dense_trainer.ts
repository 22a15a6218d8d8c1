// A GPU SAE trainer on dense kernels (shaders/matmul.wgsl, shaders/sae_dense.wgsl): ReLU with the
// decoder-norm-weighted L1; BatchTopK (shaders/batch_topk.wgsl: the K·N largest over the batch while
// training, a running threshold at inference); JumpReLU with its θ trained by the straight-through
// estimator and an L0 penalty (shaders/jumprelu.wgsl); and TopK computed densely (topk_trainer.ts
// makes the TopK step sparse; this path stays as its cross-check). The optimizer and state are
// gpu_trainer.ts's.
// x, x̂ and ∂KL/∂x̂ cross to the host once a step, which is where the LM runs on machines without a
// GPU (ORT's wasm EP).
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import * as batchTopk from "../gpu/batch_topk.ts";
import { thetaGrad } from "../gpu/jumprelu.ts";
import type { Rec } from "../gpu/kernel.ts";
import * as dense from "../gpu/sae_dense.ts";
import type { GpuContext } from "../gpu/device.ts";
import {
  type DenseMatmuls,
  denseMatmuls,
  destroyMatmuls,
  GpuSaeTrainer,
  type IoBuffers,
  type TrainerOptions,
  type TrainerState,
} from "./gpu_trainer.ts";
import { BatchThreshold, type BatchThresholdOptions } from "./batch_threshold.ts";
import type { Sae } from "./types.ts";

const K_MAX = dense.DENSE_TOPK_MAX_K;

/** BatchTopK's threshold options: sae/batch_threshold.ts. */
export interface DenseTrainerOptions extends TrainerOptions, BatchThresholdOptions {
  /** JumpReLU: bandwidth ε of the straight-through estimator (default 0.001, as the paper). */
  jumpBandwidth?: number;
}

const KINDS = ["relu", "topk", "batchtopk", "jumprelu"];

interface Batch extends IoBuffers, DenseMatmuls {
  n: number;
  pre: GPUBuffer;
  h: GPUBuffer;
  dh: GPUBuffer;
  l0: GPUBuffer;
  /** BatchTopK: selection state (8 u32) and the 256-bin histogram. */
  select: GPUBuffer;
  hist: GPUBuffer;
}

export class DenseGpuTrainer extends GpuSaeTrainer {
  #batch: Batch | null = null;
  #scratch: { norms: GPUBuffer; hsum: GPUBuffer };
  /** BatchTopK's running inference threshold. */
  #threshold: BatchThreshold | null = null;

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
    if (cfg.kind === "batchtopk") {
      this.#threshold = new BatchThreshold(this.device, this.params.threshold!, th![0], denseOpts);
    }
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
    this.assertDenseBatchFits(n, this.sae.cfg.kind);
    const buf = (floats: number, label: string) => createBuffer(dev, floats * 4, label);
    this.#batch = {
      n,
      ...this.ioBuffers(n, "dense"),
      pre: buf(n * m, "dense.pre"),
      h: buf(n * m, "dense.h"),
      dh: buf(n * m, "dense.dh"),
      l0: buf(n, "dense.l0"),
      select: buf(batchTopk.SELECT_STATE_WORDS, "batchtopk.state"),
      hist: buf(batchTopk.SELECT_HIST_BINS, "batchtopk.hist"),
      ...denseMatmuls(dev, { n, d, m }, true),
    };
    return this.#batch;
  }

  protected freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.y, b.xc, b.pre, b.h, b.xhat, b.dx, b.dh, b.l0, b.select, b.hist]) {
      x.destroy();
    }
    destroyMatmuls(b);
    this.#batch = null;
  }

  #activation(rec: Rec, b: Batch, inference: boolean): void {
    const { kind, k } = this.sae.cfg;
    const n = b.n, m = this.dSae, count = n * m;
    if (kind === "topk") {
      dense.topkRelu(rec, { pre: b.pre, h: b.h }, { rows: n, cols: m, k: k! });
    } else if (kind === "relu") {
      dense.relu(rec, { pre: b.pre, h: b.h }, { rows: n, cols: m });
    } else if (kind === "jumprelu") {
      const theta = this.params.threshold!;
      batchTopk.threshold(rec, { pre: b.pre, theta, h: b.h }, { count, cols: m });
    } else {
      this.#threshold!.record(rec, b, { count, want: k! * n, inference });
    }
  }

  async forward(x: Float32Array, n: number, inference = false, target?: Float32Array) {
    const d = this.dIn, m = this.sae.cfg.dSae, P = this.params;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    const y = this.writeTarget(b, x, target);
    const selecting = this.sae.cfg.kind === "batchtopk" && !inference;
    if (selecting) batchTopk.clearSelection(this.device, { state: b.select, hist: b.hist });
    this.pass("sae.forward", (rec) => {
      dense.center(rec, { x: b.x, bias: this.encoderBias, out: b.xc }, { rows: n, cols: d });
      b.enc.record(rec.pass, b.xc, P.W_enc, b.pre, P.b_enc);
      this.#activation(rec, b, inference);
      b.dec.record(rec.pass, b.h, P.W_dec, b.xhat, P.b_dec);
      this.recordSkipForward(rec, b, n);
      dense.countActive(rec, { h: b.h, out: b.l0 }, { rows: n, cols: m });
    });
    // One wait for all readbacks (each alone waits out the device's poll interval), the
    // threshold's selection state among them.
    const [xhat, l0s] = await Promise.all([
      readF32(this.device, b.xhat, n * d),
      readF32(this.device, b.l0, n),
      selecting ? this.#threshold!.update(b.select) : undefined,
    ]);
    return { xhat, mse: this.mseOf(y, xhat), l0: l0s.reduce((a, v) => a + v, 0) / n };
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
    }
    this.pass("sae.backward", (rec) => {
      dense.dxhat(rec, { xhat: b.xhat, x: b.y, g: b.dx }, {
        rows: n,
        cols: d,
        a: o.wMse * 2 / (n * d),
        b: o.gExt ? o.wExt : 0,
      });
      b.dhMm.record(rec.pass, b.dx, P.W_dec, b.dh);
      if (kind === "jumprelu") {
        thetaGrad(rec, { pre: b.pre, dh: b.dh, theta: P.threshold!, out: G.threshold! }, {
          rows: n,
          cols: m,
          eps: this.denseOpts.jumpBandwidth ?? 1e-3,
          lamN: lambda / n,
        });
      }
      dense.rowNorms(rec, { m: P.W_dec, out: S.norms }, { rows: m, cols: d });
      // With the L1 penalty λ·Σ h_j‖W_dec,j‖ (relu), ∂/∂h_j gains λ‖W_dec,j‖.
      dense.maskGrad(rec, { h: b.h, norms: S.norms, dh: b.dh }, { rows: n, cols: m, a: l1 / n });
      b.gEnc.record(rec.pass, b.xc, b.dh, G.W_enc);
      dense.colSum(rec, { m: b.dh, out: G.b_enc }, { rows: n, cols: m });
      b.gDec.record(rec.pass, b.h, b.dx, G.W_dec);
      dense.colSum(rec, { m: b.dx, out: G.b_dec }, { rows: n, cols: d });
      // A transcoder's encoder does not read x − b_dec.
      if (!this.sae.cfg.transcoder) {
        dense.bdecGrad(rec, { W_enc: P.W_enc, dbEnc: G.b_enc, out: G.b_dec }, {
          rows: d,
          cols: m,
        });
      }
      this.recordSkipGrad(rec, b, n);
    });
    if (l1 > 0) {
      // ∂/∂W_dec,j of λ·(Σ_t h_tj)·‖W_dec,j‖/n: needs Σ_t h and the norms side by side.
      this.pass("sae.l1", (rec) => {
        dense.colSum(rec, { m: b.h, out: S.hsum }, { rows: n, cols: m });
      });
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(S.norms, 0, S.hsum, m * 4, m * 4);
      this.device.queue.submit([enc.finish()]);
      this.pass("sae.l1dec", (rec) => {
        dense.l1Dec(rec, { W_dec: P.W_dec, hsumNorms: S.hsum, gW: G.W_dec }, {
          rows: m,
          cols: d,
          a: l1 / n,
        });
      });
    }
    this.pass("sae.firing", ({ pass }) => {
      this.firing.record(pass, n, { kind: "dense", h: b.h, n: m });
      this.firing.recordDeadCount(pass);
    });
    return Promise.resolve({ aux: 0 });
  }

  override async restore(state: TrainerState): Promise<void> {
    await super.restore(state);
    this.#threshold?.restore(state);
  }

  override release(): void {
    super.release();
    for (const b of Object.values(this.#scratch)) b.destroy();
  }
}
