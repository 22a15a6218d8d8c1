// The GPU trainer of gated SAEs (Rajamanoharan et al. 2024) on the dense kernels plus
// shaders/gated.wgsl. With u = (x − b_dec)·W_enc:
//   π_gate = u + b_gate (b_gate is b_enc),  π_mag = exp(r_mag)·u + b_mag,
//   f = 1[π_gate > 0]·ReLU(π_mag),  x̂ = f·W_dec + b_dec.
// W_mag = W_enc·diag(exp(r_mag)) shares W_enc's product, so both paths cost one encoder matmul.
//
// Loss, in this repo's units (MSE a mean over the N·d_in elements, the L1 a mean over tokens):
//   wMse·mse + wExt·⟨∂KL/∂x̂, x̂⟩ + (λ/N)·Σ_t Σ_j ReLU(π_gate)_tj·‖W_dec,j‖
//   + (1/(N·d_in))·Σ_t ‖x_t − (ReLU(π_gate)_t·sg(W_dec) + sg(b_dec))‖²      (aux; sg = detached)
// SAELens' GatedTrainingSAE and dictionary_learning's GatedSAETrainer sum the MSE and the aux over
// d_in and add them with weight 1, so their λ is d_in times ours, as for relu (dictionary_learning
// normalises the decoder rows instead of weighting by ‖W_dec,j‖). The aux term detaches W_dec and
// b_dec as the paper and dictionary_learning do (SAELens does not): only the gate's encoder
// learns from it. No gradient passes the step 1[π_gate > 0]: the gate path learns from the L1 and
// aux terms alone. The aux weight stays 1 under every objective (like relu's L1 term), so the
// gate keeps reconstructing while the KL+MSE fine-tune reshapes f.
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import * as gated from "../gpu/gated.ts";
import * as dense from "../gpu/sae_dense.ts";
import type { GpuContext } from "../gpu/device.ts";
import {
  type DenseMatmuls,
  denseMatmuls,
  destroyMatmuls,
  GpuSaeTrainer,
  type IoBuffers,
  meanSquaredError,
  type TrainerOptions,
} from "./gpu_trainer.ts";
import type { Sae } from "./types.ts";

interface Batch extends IoBuffers, DenseMatmuls {
  n: number;
  /** [n, d_sae]: u = (x − b_dec)·W_enc, f, ReLU(π_gate), ∂f → ∂π_mag, ∂gate → ∂π_gate, ∂u. */
  u: GPUBuffer;
  f: GPUBuffer;
  gate: GPUBuffer;
  dh: GPUBuffer;
  dg: GPUBuffer;
  du: GPUBuffer;
  /** [n, d_in]: the gate path's reconstruction and the aux term's gradient at it. */
  xg: GPUBuffer;
  dxg: GPUBuffer;
  l0: GPUBuffer;
  /** Whether the last forward made xg (training forwards do; inference ones skip it). */
  hasGate: boolean;
}

export class GatedGpuTrainer extends GpuSaeTrainer {
  #batch: Batch | null = null;
  #scratch: { norms: GPUBuffer; hsumNorms: GPUBuffer; duSum: GPUBuffer };
  /** The aux term of the last training forward. */
  #aux = 0;

  constructor(gpu: GpuContext, sae: Sae, opts: TrainerOptions) {
    const { cfg } = sae;
    if (cfg.kind !== "gated") {
      throw new Error(`the gated GPU trainer trains gated SAEs, not ${cfg.kind}`);
    }
    // r_mag and b_mag are checked with the other weights (sae/params.ts) as super() uploads them.
    super(gpu, sae, opts);
    const m = cfg.dSae;
    this.#scratch = {
      norms: createBuffer(this.device, m * 4, "gated.norms"),
      hsumNorms: createBuffer(this.device, 2 * m * 4, "gated.hsum-norms"),
      duSum: createBuffer(this.device, m * 4, "gated.du-sum"),
    };
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    this.freeBatch();
    const d = this.dIn, m = this.dSae, dev = this.device;
    this.assertDenseBatchFits(n, "gated");
    const buf = (floats: number, label: string) => createBuffer(dev, floats * 4, label);
    this.#batch = {
      n,
      ...this.ioBuffers(n, "gated"),
      u: buf(n * m, "gated.u"),
      f: buf(n * m, "gated.f"),
      gate: buf(n * m, "gated.gate"),
      dh: buf(n * m, "gated.dh"),
      dg: buf(n * m, "gated.dg"),
      du: buf(n * m, "gated.du"),
      xg: buf(n * d, "gated.xg"),
      dxg: buf(n * d, "gated.dxg"),
      l0: buf(n, "gated.l0"),
      hasGate: false,
      ...denseMatmuls(dev, { n, d, m }, false),
    };
    return this.#batch;
  }

  protected freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.xc, b.xhat, b.dx, b.u, b.f, b.gate, b.dh, b.dg, b.du, b.xg, b.dxg]) {
      x.destroy();
    }
    b.l0.destroy();
    destroyMatmuls(b);
    this.#batch = null;
  }

  /** inference: skips the gate path's reconstruction, which only the aux term needs. */
  async forward(x: Float32Array, n: number, inference = false) {
    const d = this.dIn, m = this.dSae, P = this.params;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    this.pass("gated.forward", (rec) => {
      dense.center(rec, { x: b.x, bias: P.b_dec, out: b.xc }, { rows: n, cols: d });
      b.enc.record(rec.pass, b.xc, P.W_enc, b.u);
      gated.encode(rec, {
        u: b.u,
        bGate: P.b_enc,
        rMag: P.r_mag!,
        bMag: P.b_mag!,
        f: b.f,
        gate: b.gate,
      }, { rows: n, cols: m });
      b.dec.record(rec.pass, b.f, P.W_dec, b.xhat, P.b_dec);
      if (!inference) b.dec.record(rec.pass, b.gate, P.W_dec, b.xg, P.b_dec);
      dense.countActive(rec, { h: b.f, out: b.l0 }, { rows: n, cols: m });
    });
    b.hasGate = !inference;
    // One wait for all readbacks (each alone waits out the device's poll interval).
    const [xhat, l0s, xg] = await Promise.all([
      readF32(this.device, b.xhat, n * d),
      readF32(this.device, b.l0, n),
      inference ? Promise.resolve(null) : readF32(this.device, b.xg, n * d),
    ]);
    if (xg) this.#aux = meanSquaredError(x, xg);
    return { xhat, mse: this.mseOf(x, xhat), l0: l0s.reduce((a, v) => a + v, 0) / n };
  }

  backward(
    o: { wMse: number; gExt: Float32Array | GPUBuffer | null; wExt: number; l1?: number },
  ): Promise<{ aux: number }> {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    if (!b.hasGate) {
      throw new Error(
        "gated SAE: backward after an inference forward (it skips the gate path the aux term " +
          "needs); train on forward(x, n) with inference false",
      );
    }
    const n = b.n, d = this.dIn, m = this.dSae, P = this.params, G = this.grads;
    const S = this.#scratch;
    const lambda = o.l1 ?? this.sae.cfg.l1Coefficient ?? 0;
    if (o.gExt instanceof GPUBuffer) {
      throw new Error(
        "gated SAE: ∂KL/∂x̂ as a GPU buffer is not supported (no forwardGpu); pass it as a " +
          "Float32Array",
      );
    }
    if (o.gExt) {
      if (o.gExt.length !== n * d) {
        throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
      }
      write(this.device, b.dx, o.gExt);
    }
    const dims = { rows: n, cols: m };
    this.pass("gated.backward", (rec) => {
      dense.dxhat(rec, { xhat: b.xhat, x: b.x, g: b.dx }, {
        rows: n,
        cols: d,
        a: o.wMse * 2 / (n * d),
        b: o.gExt ? o.wExt : 0,
      });
      b.dhMm.record(rec.pass, b.dx, P.W_dec, b.dh);
      // The aux term's gradient at the gate path's reconstruction, then at ReLU(π_gate).
      dense.dxhat(rec, { xhat: b.xg, x: b.x, g: b.dxg }, {
        rows: n,
        cols: d,
        a: 2 / (n * d),
        b: 0,
      });
      b.dhMm.record(rec.pass, b.dxg, P.W_dec, b.dg);
      dense.rowNorms(rec, { m: P.W_dec, out: S.norms }, { rows: m, cols: d });
      gated.preGrad(rec, {
        f: b.f,
        gate: b.gate,
        norms: S.norms,
        rMag: P.r_mag!,
        dh: b.dh,
        dg: b.dg,
        du: b.du,
      }, { ...dims, a: lambda / n });
      dense.colSum(rec, { m: b.dh, out: G.b_mag! }, dims);
      gated.rGrad(rec, { dmag: b.dh, u: b.u, rMag: P.r_mag!, out: G.r_mag! }, dims);
      dense.colSum(rec, { m: b.dg, out: G.b_enc }, dims);
      dense.colSum(rec, { m: b.du, out: S.duSum }, dims);
      b.gEnc.record(rec.pass, b.xc, b.du, G.W_enc);
      b.gDec.record(rec.pass, b.f, b.dx, G.W_dec);
      dense.colSum(rec, { m: b.dx, out: G.b_dec }, { rows: n, cols: d });
      // b_dec enters the encoder's input too: ∂b_dec −= W_enc·Σ_t ∂u.
      dense.bdecGrad(rec, { W_enc: P.W_enc, dbEnc: S.duSum, out: G.b_dec }, { rows: d, cols: m });
      dense.colSum(rec, { m: b.gate, out: S.hsumNorms }, dims);
      this.firing.record(rec.pass, n, { kind: "dense", h: b.f, n: m });
      this.firing.recordDeadCount(rec.pass);
    });
    if (lambda !== 0) {
      // ∂/∂W_dec,j of (λ/N)·(Σ_t ReLU(π_gate)_tj)·‖W_dec,j‖: Σ_t gate and the norms side by side.
      this.pass("gated.l1dec", (rec) => {
        dense.l1Dec(rec, { W_dec: P.W_dec, hsumNorms: S.hsumNorms, gW: G.W_dec }, {
          rows: m,
          cols: d,
          a: lambda / n,
        });
      }, (enc) => enc.copyBufferToBuffer(S.norms, 0, S.hsumNorms, m * 4, m * 4));
    }
    return Promise.resolve({ aux: this.#aux });
  }

  override release(): void {
    super.release();
    for (const b of Object.values(this.#scratch)) b.destroy();
  }
}
