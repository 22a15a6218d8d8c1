// The TopK SAE step with sparse kernels: the encoder matmul is dense (it has to be), then per-row
// top-k (gpu/topk.ts), decode gathering K decoder rows per token, and a backward that touches only
// the active latents through a latent → entries index (shaders/sae_sparse.wgsl). Decode and
// backward cost O(N·K·d) instead of O(N·n·d).
// With dead latents (no firing for deadWindowTokens) the auxk loss of Gao et al. is added: the
// residual e = x − x̂ (detached) is reconstructed from the top-k_aux pre-activations of the dead
// latents, ê = Σ relu(pre_j)·W_dec,j, and coef·‖ê − e‖² / Σ‖e − ē‖² joins the loss, so dead
// latents get gradient toward what the live ones miss.
import { auxkResidual } from "./auxk.ts";
import { createBuffer, readF32, readU32, write } from "../gpu/buffers.ts";
import type { Rec } from "../gpu/kernel.ts";
import { Matmul } from "../gpu/matmul.ts";
import { bdecGrad, center, colSum, dxhat } from "../gpu/sae_dense.ts";
import * as sparse from "../gpu/sae_sparse.ts";
import { TopK, TOPK_MAX_K } from "../gpu/topk.ts";
import { ReconstructionMetrics } from "../gpu/metrics.ts";
import type { GpuContext } from "../gpu/device.ts";
import { GpuSaeTrainer, type IoBuffers, type TrainerOptions } from "./gpu_trainer.ts";
import type { Sae } from "./types.ts";

export interface TopKTrainerOptions extends TrainerOptions {
  /** Latents in the auxk reconstruction (default d_in / 2, at most 256; 0 turns auxk off). */
  auxK?: number;
  /** Weight of the auxk loss (default 1/32, as Gao et al.). */
  auxCoef?: number;
  /** At most this many rows encoded at once (default: what one storage binding holds). */
  maxChunkRows?: number;
}

/** Buffers of the auxk term, made on the first step that has dead latents. */
interface AuxBatch {
  /** Masked pre-activations of one chunk of rows. */
  pre: GPUBuffer;
  idx: GPUBuffer;
  val: GPUBuffer;
  /** One chunk's selection before it is copied into idx / val (chunked batches only). */
  idxC: GPUBuffer | null;
  valC: GPUBuffer | null;
  dval: GPUBuffer;
  list: GPUBuffer;
  ehat: GPUBuffer;
  de: GPUBuffer;
}

/**
 * Rows of the batch encoded at once. pre [rows, d_sae] must fit one storage binding (128 MiB on
 * llvmpipe: 2048 rows at d_sae 16384), so larger batches run the encoder and the top-k chunk by
 * chunk.
 */
interface Chunk {
  r0: number;
  rows: number;
  enc: Matmul;
  topk: TopK;
  auxTopk: TopK;
}

interface Batch extends IoBuffers {
  n: number;
  /** Pre-activations of one chunk of rows. */
  pre: GPUBuffer;
  idx: GPUBuffer;
  val: GPUBuffer;
  dval: GPUBuffer;
  list: GPUBuffer;
  chunks: Chunk[];
  /** Staging for one chunk's rows of x − b_dec and its selection (chunked batches only). */
  staging: { xc: GPUBuffer; idx: GPUBuffer; val: GPUBuffer } | null;
  aux: AuxBatch | null;
  /** Whether the last forward selected the auxk latents (there were dead latents). */
  auxOn: boolean;
  /** x and x̂ of the last forward, host side (the auxk residual). */
  hostX: Float32Array;
  hostXhat: Float32Array;
}

export class TopKGpuTrainer extends GpuSaeTrainer {
  readonly k: number;
  readonly auxK: number;
  readonly auxCoef: number;
  readonly maxChunkRows: number;
  #batch: Batch | null = null;
  /** Batch metrics on the GPU, for forwardGpu (whose x never reaches the host). */
  #metrics: ReconstructionMetrics | null = null;
  #index: { count: GPUBuffer; offs: GPUBuffer; cursor: GPUBuffer; zeroBias: GPUBuffer };

  constructor(gpu: GpuContext, sae: Sae, opts: TopKTrainerOptions) {
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
    this.auxK = Math.min(opts.auxK ?? Math.max(1, cfg.dIn >> 1), TOPK_MAX_K, cfg.dSae);
    this.auxCoef = opts.auxCoef ?? 1 / 32;
    this.maxChunkRows = opts.maxChunkRows ?? Infinity;
    const m = cfg.dSae;
    this.#index = {
      count: createBuffer(this.device, m * 4, "topk.count"),
      offs: createBuffer(this.device, (m + 1) * 4, "topk.offs"),
      cursor: createBuffer(this.device, m * 4, "topk.cursor"),
      zeroBias: createBuffer(this.device, cfg.dIn * 4, "topk.zero-bias"),
    };
  }

  /** Rows per chunk: as many as one storage binding holds of pre [rows, d_sae]. */
  #rowsPerChunk(n: number): number {
    const limit = this.device.limits.maxStorageBufferBindingSize;
    const rows = Math.floor(limit / (this.dSae * 4));
    if (rows < 1) {
      throw new RangeError(
        `d_sae ${this.dSae} is too wide for this adapter: one row of pre-activations needs ` +
          `${this.dSae * 4} bytes, its storage binding limit is ${limit}`,
      );
    }
    return Math.min(n, rows, this.maxChunkRows);
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    this.freeBatch();
    const d = this.dIn, m = this.dSae, k = this.k, dev = this.device;
    const buf = (values: number, label: string) => createBuffer(dev, values * 4, label);
    const c = this.#rowsPerChunk(n);
    const chunks: Chunk[] = [];
    for (let r0 = 0; r0 < n; r0 += c) {
      const rows = Math.min(c, n - r0);
      chunks.push({
        r0,
        rows,
        enc: new Matmul(dev, { M: rows, N: m, K: d }, true),
        topk: new TopK(dev, { rows, cols: m, k }),
        auxTopk: new TopK(dev, { rows, cols: m, k: Math.max(1, this.auxK) }),
      });
    }
    this.#batch = {
      n,
      ...this.ioBuffers(n, "topk"),
      pre: buf(c * m, "topk.pre"),
      idx: buf(n * k, "topk.idx"),
      val: buf(n * k, "topk.val"),
      dval: buf(n * k, "topk.dval"),
      list: buf(n * k, "topk.list"),
      chunks,
      staging: chunks.length > 1
        ? {
          xc: buf(c * d, "topk.xc-chunk"),
          idx: buf(c * k, "topk.idx-chunk"),
          val: buf(c * k, "topk.val-chunk"),
        }
        : null,
      aux: null,
      auxOn: false,
      hostX: new Float32Array(0),
      hostXhat: new Float32Array(0),
    };
    return this.#batch;
  }

  #auxFor(b: Batch): AuxBatch {
    if (b.aux) return b.aux;
    const n = b.n, d = this.dIn, m = this.dSae, ka = this.auxK, dev = this.device;
    const buf = (values: number, label: string) => createBuffer(dev, values * 4, label);
    const c = b.chunks[0].rows;
    b.aux = {
      pre: buf(c * m, "auxk.pre"),
      idx: buf(n * ka, "auxk.idx"),
      val: buf(n * ka, "auxk.val"),
      idxC: b.staging ? buf(c * ka, "auxk.idx-chunk") : null,
      valC: b.staging ? buf(c * ka, "auxk.val-chunk") : null,
      dval: buf(n * ka, "auxk.dval"),
      list: buf(n * ka, "auxk.list"),
      ehat: buf(n * d, "auxk.ehat"),
      de: buf(n * d, "auxk.de"),
    };
    return b.aux;
  }

  protected freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.y, b.xc, b.pre, b.idx, b.val, b.dval, b.xhat, b.dx, b.list]) {
      x.destroy();
    }
    for (const c of b.chunks) {
      c.enc.destroy();
      c.topk.destroy();
      c.auxTopk.destroy();
    }
    for (const x of Object.values(b.staging ?? {})) x.destroy();
    if (b.aux) {
      const a = b.aux;
      for (const x of [a.pre, a.idx, a.val, a.idxC, a.valC, a.dval, a.list, a.ehat, a.de]) {
        x?.destroy();
      }
    }
    this.#batch = null;
  }

  async forward(x: Float32Array, n: number, inference = false, target?: Float32Array) {
    const d = this.dIn;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    const y = this.writeTarget(b, x, target);
    this.#encodeForward(b, n, inference);
    // Each readback waits out the device's poll interval (~11 ms on llvmpipe): read together.
    const [xhat, l0] = await Promise.all([readF32(this.device, b.xhat, n * d), this.#l0(b, n)]);
    if (b.auxOn) {
      // The auxk residual y − x̂ is formed on the host in the backward.
      b.hostX = y.slice();
      b.hostXhat = xhat;
    }
    return { xhat, mse: this.mseOf(y, xhat), l0 };
  }

  /**
   * forward() for activations already on the GPU (an ONNX Runtime WebGPU output): x is copied on
   * the device and x̂ stays there (the returned buffer is the trainer's, valid until the next
   * forward). Only the metrics come back to the host.
   */
  async forwardGpu(x: GPUBuffer, n: number, inference = false) {
    const d = this.dIn;
    if (this.sae.cfg.transcoder) {
      throw new Error("forwardGpu: transcoders read their input and target from the host");
    }
    if (x.size < n * d * 4) {
      throw new RangeError(`forwardGpu: x holds ${x.size} bytes, expected ${n}×${d} floats`);
    }
    const b = this.#batchFor(n);
    const copy = this.device.createCommandEncoder({ label: "sae.forward.x" });
    copy.copyBufferToBuffer(x, 0, b.x, 0, n * d * 4);
    this.device.queue.submit([copy.finish()]);
    this.#encodeForward(b, n, inference);
    if (b.auxOn) {
      [b.hostX, b.hostXhat] = await Promise.all([
        readF32(this.device, b.x, n * d),
        readF32(this.device, b.xhat, n * d),
      ]);
    }
    this.#metrics ??= new ReconstructionMetrics(this.device, d, n);
    if (this.#metrics.maxTokens < n) {
      this.#metrics.destroy();
      this.#metrics = new ReconstructionMetrics(this.device, d, n);
    }
    const m = await this.#metrics.compute({
      x: b.x,
      xHat: b.xhat,
      nTokens: n,
      acts: { kind: "sparse", idx: b.idx, val: b.val, k: this.k },
    });
    return { xhat: b.xhat, mse: m.mse, fvu: m.fvu, l0: m.l0 };
  }

  async #l0(b: Batch, n: number): Promise<number> {
    const val = await readF32(this.device, b.val, n * this.k);
    let active = 0;
    for (const v of val) if (v > 0) active++;
    return active / n;
  }

  #encodeForward(b: Batch, n: number, inference: boolean): void {
    const d = this.dIn, P = this.params;
    // auxk selects among the latents dead so far; it needs the pre-activations, so here.
    b.auxOn = !inference && this.lastDead > 0 && this.auxK > 0 && this.auxCoef > 0;
    const a = b.auxOn ? this.#auxFor(b) : null;
    const k = this.k, ka = this.auxK, m = this.dSae, S = b.staging;
    this.gpu.assertAlive();
    const enc = this.device.createCommandEncoder({ label: "sae.forward" });
    const rec: Rec = {
      device: this.device,
      pass: enc.beginComputePass({ label: "sae.forward" }),
      uniforms: this.uniforms,
    };
    center(rec, { x: b.x, bias: this.encoderBias, out: b.xc }, { rows: n, cols: d });
    for (const c of b.chunks) {
      if (S) {
        rec.pass.end();
        enc.copyBufferToBuffer(b.xc, c.r0 * d * 4, S.xc, 0, c.rows * d * 4);
        rec.pass = enc.beginComputePass({ label: "sae.forward.chunk" });
      }
      c.enc.record(rec.pass, S ? S.xc : b.xc, P.W_enc, b.pre, P.b_enc);
      c.topk.record(rec.pass, b.pre, S ? S.idx : b.idx, S ? S.val : b.val);
      if (a) {
        sparse.maskDead(rec, { pre: b.pre, since: this.firing.tokensSinceFired, out: a.pre }, {
          n: c.rows,
          m,
          window: Math.min(this.firing.deadWindowTokens, 0xffffffff),
        });
        c.auxTopk.record(rec.pass, a.pre, a.idxC ?? a.idx, a.valC ?? a.val);
      }
      if (S) {
        rec.pass.end();
        enc.copyBufferToBuffer(S.idx, 0, b.idx, c.r0 * k * 4, c.rows * k * 4);
        enc.copyBufferToBuffer(S.val, 0, b.val, c.r0 * k * 4, c.rows * k * 4);
        if (a) {
          enc.copyBufferToBuffer(a.idxC!, 0, a.idx, c.r0 * ka * 4, c.rows * ka * 4);
          enc.copyBufferToBuffer(a.valC!, 0, a.val, c.r0 * ka * 4, c.rows * ka * 4);
        }
        rec.pass = enc.beginComputePass({ label: "sae.forward.decode" });
      }
    }
    sparse.decode(rec, { idx: b.idx, val: b.val, W_dec: P.W_dec, b: P.b_dec, out: b.xhat }, {
      n,
      d,
      m,
      k,
    });
    this.recordSkipForward(rec, b, n);
    rec.pass.end();
    this.device.queue.submit([enc.finish()]);
    this.uniforms.reset();
  }

  async backward(o: { wMse: number; gExt: Float32Array | GPUBuffer | null; wExt: number }) {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    const n = b.n, d = this.dIn, m = this.dSae, k = this.k, P = this.params, G = this.grads;
    if (o.gExt instanceof GPUBuffer) {
      // ∂KL/∂x̂ straight from ONNX Runtime's WebGPU output: copied on the device.
      if (o.gExt.size < n * d * 4) {
        throw new RangeError(`∂KL/∂x̂ holds ${o.gExt.size} bytes, expected ${n}×${d} floats`);
      }
      const copy = this.device.createCommandEncoder({ label: "sae.backward.dx" });
      copy.copyBufferToBuffer(o.gExt, 0, b.dx, 0, n * d * 4);
      this.device.queue.submit([copy.finish()]);
    } else {
      if (o.gExt && o.gExt.length !== n * d) {
        throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
      }
      if (o.gExt) write(this.device, b.dx, o.gExt);
    }
    this.#encode("sae.backward", (rec) => {
      dxhat(rec, { xhat: b.xhat, x: b.y, g: b.dx }, {
        rows: n,
        cols: d,
        a: o.wMse * 2 / (n * d),
        b: o.gExt ? o.wExt : 0,
      });
      const dims = { n, d, m, k };
      sparse.dval(rec, { idx: b.idx, val: b.val, dx: b.dx, W_dec: P.W_dec, out: b.dval }, dims);
      this.#sparseGrads(rec, dims, b.idx, b.val, b.dval, b.list, b.dx, b.xc, false);
      this.recordSkipGrad(rec, b, n);
    });
    const aux = b.auxOn ? await this.#auxk(b) : 0;
    this.pass("sae.bdec", (rec) => {
      // b_dec enters both the decoder output and the encoder input (∂b_enc includes auxk here).
      colSum(rec, { m: b.dx, out: G.b_dec }, { rows: n, cols: d });
      // A transcoder's encoder does not read x − b_dec.
      if (!this.sae.cfg.transcoder) {
        bdecGrad(rec, { W_enc: P.W_enc, dbEnc: G.b_enc, out: G.b_dec }, { rows: d, cols: m });
      }
      this.firing.record(rec.pass, n, { kind: "sparse", idx: b.idx, val: b.val, k });
      this.firing.recordDeadCount(rec.pass);
    });
    return { aux };
  }

  /** A pass after clearing the latent index's counters. */
  #encode(label: string, record: (rec: Rec) => void): void {
    this.pass(label, record, (enc) => {
      enc.clearBuffer(this.#index.count);
      enc.clearBuffer(this.#index.cursor);
    });
  }

  /** Builds the latent → entries index of (idx, val) [n, k] and writes or adds the gradients. */
  #sparseGrads(
    rec: Rec,
    dims: sparse.SparseDims,
    idx: GPUBuffer,
    val: GPUBuffer,
    dval: GPUBuffer,
    list: GPUBuffer,
    dx: GPUBuffer,
    xc: GPUBuffer,
    accumulate: boolean,
  ): void {
    const I = this.#index, G = this.grads;
    sparse.sparseGrads(
      rec,
      {
        idx,
        val,
        dval,
        dx,
        xc,
        index: { count: I.count, offs: I.offs, cursor: I.cursor, list },
        gW_dec: G.W_dec,
        gW_enc: G.W_enc,
        gb_enc: G.b_enc,
      },
      dims,
      accumulate,
    );
  }

  /** Adds the auxk gradients; returns coef · the normalised auxk loss. */
  async #auxk(b: Batch): Promise<number> {
    const n = b.n, d = this.dIn, ka = this.auxK, P = this.params;
    const a = this.#auxFor(b);
    const dims = { n, d, m: this.dSae, k: ka };
    this.pass("sae.auxk.decode", (rec) => {
      sparse.decode(rec, {
        idx: a.idx,
        val: a.val,
        W_dec: P.W_dec,
        b: this.#index.zeroBias,
        out: a.ehat,
      }, dims);
    });
    const ehat = await readF32(this.device, a.ehat, n * d);
    const de = new Float32Array(n * d);
    const loss = auxkResidual(b.hostX, b.hostXhat, ehat, n, d, this.auxCoef, de);
    if (loss === null) return 0;
    write(this.device, a.de, de);
    this.#encode("sae.auxk.backward", (rec) => {
      sparse.dval(rec, { idx: a.idx, val: a.val, dx: a.de, W_dec: P.W_dec, out: a.dval }, dims);
      this.#sparseGrads(rec, dims, a.idx, a.val, a.dval, a.list, a.de, b.xc, true);
    });
    return loss;
  }

  /**
   * ∂⟨g, x̂⟩/∂x for the last forward's x (the SAE held fixed): Σ over each token's active latents
   * of [h > 0]·(g·W_dec,j)·W_enc[:, j]. On the host: it costs N·K·d, and adapters before the hook
   * (LoRA on the LM's prefix) read it there.
   */
  async inputGradient(g: Float32Array): Promise<Float32Array> {
    const b = this.#batch;
    if (!b) throw new Error("inputGradient before forward");
    if (this.sae.cfg.transcoder) {
      throw new Error("inputGradient: not implemented for transcoders (LoRA before the hook)");
    }
    const n = b.n, d = this.dIn, m = this.dSae, k = this.k;
    if (g.length !== n * d) throw new RangeError(`inputGradient: g has ${g.length}, not ${n * d}`);
    const idx = await readU32(this.device, b.idx, n * k),
      val = await readF32(this.device, b.val, n * k);
    const Wenc = await readF32(this.device, this.params.W_enc, d * m);
    const Wdec = await readF32(this.device, this.params.W_dec, m * d);
    const out = new Float32Array(n * d);
    for (let t = 0; t < n; t++) {
      for (let s = 0; s < k; s++) {
        if (!(val[t * k + s] > 0)) continue;
        const j = idx[t * k + s];
        let dv = 0;
        for (let i = 0; i < d; i++) dv += g[t * d + i] * Wdec[j * d + i];
        for (let i = 0; i < d; i++) out[t * d + i] += dv * Wenc[i * m + j];
      }
    }
    return out;
  }

  override release(): void {
    super.release();
    for (const b of Object.values(this.#index)) b.destroy();
    this.#metrics?.destroy();
  }
}
