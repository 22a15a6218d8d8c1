// A GPU SAE trainer on dense kernels (shaders/matmul.wgsl, shaders/sae_dense.wgsl): ReLU with the
// decoder-norm-weighted L1, and TopK computed densely (topk_trainer.ts makes the TopK step sparse;
// this path stays as its cross-check). The optimizer and state are gpu_trainer.ts's.
// x, x̂ and ∂KL/∂x̂ cross to the host once a step, which is where the LM runs on machines without a
// GPU (ORT's wasm EP).
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import { Matmul } from "../gpu/matmul.ts";
import type { GpuContext } from "../gpu/device.ts";
import { GpuSaeTrainer, type TrainerOptions } from "./gpu_trainer.ts";
import type { Sae } from "./types.ts";

const K_MAX = 256;

export type DenseTrainerOptions = TrainerOptions;

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
  enc: Matmul;
  dec: Matmul;
  dhMm: Matmul;
  gEnc: Matmul;
  gDec: Matmul;
}

export class DenseGpuTrainer extends GpuSaeTrainer {
  #batch: Batch | null = null;
  #scratch: { norms: GPUBuffer; hsum: GPUBuffer };

  constructor(gpu: GpuContext, sae: Sae, opts: DenseTrainerOptions) {
    const { cfg } = sae;
    if (cfg.kind !== "relu" && cfg.kind !== "topk") {
      throw new Error(
        `the dense GPU trainer trains relu and topk SAEs; ${cfg.kind} is not supported yet`,
      );
    }
    if (cfg.kind === "topk" && !(cfg.k && cfg.k >= 1 && cfg.k <= K_MAX)) {
      throw new RangeError(`topk SAE: k must be in [1, ${K_MAX}], got ${cfg.k}`);
    }
    super(gpu, sae, opts);
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
    for (const x of [b.x, b.xc, b.pre, b.h, b.xhat, b.dx, b.dh, b.l0]) x.destroy();
    for (const mm of [b.enc, b.dec, b.dhMm, b.gEnc, b.gDec]) mm.destroy();
    this.#batch = null;
  }

  async forward(x: Float32Array, n: number) {
    const d = this.dIn, m = this.sae.cfg.dSae, P = this.params;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    this.pass("sae.forward", (pass) => {
      this.runDense(pass, "center", "center", [b.x, P.b_dec, b.xc], n * d, { rows: n, cols: d });
      b.enc.record(pass, b.xc, P.W_enc, b.pre, P.b_enc);
      if (this.sae.cfg.kind === "topk") {
        this.runDense(pass, "topk_relu", "act", [b.pre, b.pre, b.h], n, {
          rows: n,
          cols: m,
          k: this.sae.cfg.k,
        });
      } else {
        this.runDense(pass, "relu", "act", [b.pre, b.pre, b.h], n * m, { rows: n, cols: m });
      }
      b.dec.record(pass, b.h, P.W_dec, b.xhat, P.b_dec);
      this.runDense(pass, "count_active", "l0", [b.h, b.h, b.l0], n, { rows: n, cols: m });
    });
    const xhat = await readF32(this.device, b.xhat, n * d);
    const l0s = await readF32(this.device, b.l0, n);
    return { xhat, mse: this.mseOf(x, xhat), l0: l0s.reduce((a, v) => a + v, 0) / n };
  }

  async backwardAndStep(
    o: { wMse: number; gExt: Float32Array | null; wExt: number; lr: number; l1?: number },
  ) {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    const n = b.n,
      d = this.dIn,
      m = this.sae.cfg.dSae,
      P = this.params,
      G = this.grads,
      S = this.#scratch;
    const l1 = this.sae.cfg.kind === "relu" ? (o.l1 ?? this.sae.cfg.l1Coefficient ?? 0) : 0;
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
    const { gradNorm, dead } = await this.optimizerStep(o.lr);
    return { gradNorm, aux: 0, dead };
  }

  override release(): void {
    super.release();
    for (const b of Object.values(this.#scratch)) b.destroy();
  }
}
