// Matryoshka BatchTopK (Bussmann et al. 2025; SAELens' MatryoshkaBatchTopKTrainingSAE): BatchTopK
// codes (the K·N largest pre-activations of the batch while training, one running threshold at
// inference), and nested prefixes of the latents, each reconstructing x on its own. The loss adds
// every prefix's MSE with weight 1, as SAELens does (dictionary_learning averages the prefixes'
// losses, with group_weights 1/G by default): L = wMse·Σ_g MSE(x̂_g, x) + wExt·⟨gExt, x̂_G⟩, the
// external gradient (∂KL/∂x̂ from the LM) reading the full reconstruction, the one spliced in.
// The prefix reconstructions and the weight gradients are shaders/matryoshka.wgsl's, which read
// only the nonzero codes (a BatchTopK batch has k of d_sae per token on average: its decode and
// weight gradients cost O(N·k·d) rather than O(N·d_sae·d)); the encoder matmul, the selection and
// the reductions are the dense trainer's kernels.
// With dead latents the auxk term joins, as SAELens 6.37 added it (its use_matryoshka_aux_loss
// false, the default: the whole SAE's residual) and written as topk_trainer.ts's (Gao et al.):
// e = x − x̂_G detached, ê = Σ relu(pre_j)·W_dec,j over each token's top-k_aux dead latents, and
// coef·‖ê − e‖² / Σ‖e − ē‖². It reuses the prefix kernels with one prefix of width d_sae.
import { auxkResidual } from "./auxk.ts";
import { createBuffer, readBytes, readF32, upload, write } from "../gpu/buffers.ts";
import * as batchTopk from "../gpu/batch_topk.ts";
import type { GpuContext } from "../gpu/device.ts";
import { Matmul } from "../gpu/matmul.ts";
import * as mat from "../gpu/matryoshka.ts";
import { checkWidths } from "./matryoshka_widths.ts";
import * as dense from "../gpu/sae_dense.ts";
import * as sparse from "../gpu/sae_sparse.ts";
import {
  GpuSaeTrainer,
  type IoBuffers,
  type TrainerOptions,
  type TrainerState,
} from "./gpu_trainer.ts";
import { BatchThreshold, type BatchThresholdOptions } from "./batch_threshold.ts";
import type { Sae } from "./types.ts";

/** The threshold options are BatchTopK's (sae/batch_threshold.ts). */
export interface MatryoshkaTrainerOptions extends TrainerOptions, BatchThresholdOptions {
  /** Latents in the auxk reconstruction (default d_in / 2, at most 256; 0 turns auxk off). */
  auxK?: number;
  /** Weight of the auxk loss (default 1/32, as Gao et al. and dictionary_learning). */
  auxCoef?: number;
}

/** The auxk term's buffers, made on the first step with dead latents. */
interface AuxBatch {
  pre: GPUBuffer;
  h: GPUBuffer;
  ehat: GPUBuffer;
  de: GPUBuffer;
  dh: GPUBuffer;
  gDec: GPUBuffer;
}

interface Batch extends IoBuffers {
  n: number;
  pre: GPUBuffer;
  h: GPUBuffer;
  dh: GPUBuffer;
  l0: GPUBuffer;
  /** Every prefix's reconstruction [G, n, d], then (backward) the suffix sums of ∂L/∂x̂. */
  xhats: GPUBuffer;
  suffix: GPUBuffer;
  /** Each token's nonzero codes, for the prefix decode (gpu/matryoshka.ts listWords). */
  list: GPUBuffer;
  select: GPUBuffer;
  hist: GPUBuffer;
  enc: Matmul;
  /** Each latent's tokens with a nonzero code, for the weight gradients (colWords). */
  cols: GPUBuffer;
  aux: AuxBatch | null;
  /** Whether the last forward selected the auxk latents (there were dead latents). */
  auxOn: boolean;
  /** x and x̂ of the last forward, host side (the auxk residual). */
  hostX: Float32Array;
  hostXhat: Float32Array;
}

export class MatryoshkaGpuTrainer extends GpuSaeTrainer {
  readonly widths: readonly number[];
  readonly auxK: number;
  readonly auxCoef: number;
  #ends: GPUBuffer;
  /** One prefix of width d_sae (the auxk reconstruction) and a zero bias. */
  #whole: GPUBuffer;
  #zeroBias: GPUBuffer;
  #batch: Batch | null = null;
  /** Host copy of the inference threshold; < 0 until a batch has set it. */
  #threshold: BatchThreshold;

  constructor(gpu: GpuContext, sae: Sae, readonly matOpts: MatryoshkaTrainerOptions) {
    const { cfg } = sae;
    if (cfg.kind !== "matryoshka_batchtopk") {
      throw new Error(`the Matryoshka trainer trains matryoshka_batchtopk SAEs, not ${cfg.kind}`);
    }
    if (!(cfg.k && cfg.k >= 1 && cfg.k <= cfg.dSae)) {
      throw new RangeError(
        `matryoshka_batchtopk SAE: k must be in [1, d_sae=${cfg.dSae}], got ${cfg.k}`,
      );
    }
    if (!cfg.matryoshkaWidths) {
      throw new RangeError(
        "matryoshka_batchtopk SAE: no matryoshkaWidths (the prefix widths); give them in the " +
          "config (init.matryoshka_widths) or in the file's cfg.json (matryoshka_widths)",
      );
    }
    checkWidths(cfg.matryoshkaWidths, cfg.dSae, "matryoshka_batchtopk SAE");
    if (sae.weights.threshold?.length !== 1) {
      throw new RangeError(
        `matryoshka_batchtopk SAE: threshold must hold 1 value, found ` +
          `${sae.weights.threshold?.length ?? "none"}`,
      );
    }
    super(gpu, sae, matOpts);
    this.widths = [...cfg.matryoshkaWidths];
    this.#ends = upload(this.device, Uint32Array.from(this.widths), "matryoshka.ends");
    this.#whole = upload(this.device, Uint32Array.of(cfg.dSae), "matryoshka.whole");
    this.#zeroBias = createBuffer(this.device, cfg.dIn * 4, "matryoshka.zero-bias");
    this.auxK = Math.min(
      matOpts.auxK ?? Math.max(1, cfg.dIn >> 1),
      dense.DENSE_TOPK_MAX_K,
      cfg.dSae,
    );
    this.auxCoef = matOpts.auxCoef ?? 1 / 32;
    this.#threshold = new BatchThreshold(
      this.device,
      this.params.threshold!,
      sae.weights.threshold[0],
      matOpts,
    );
  }

  get #dims(): mat.PrefixDims {
    return { n: this.#batch!.n, d: this.dIn, m: this.dSae, groups: this.widths.length };
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    this.freeBatch();
    const d = this.dIn, m = this.dSae, G = this.widths.length, dev = this.device;
    const limit = dev.limits.maxStorageBufferBindingSize;
    const widest = Math.max(mat.listWords(n, m), mat.colWords(n, m), G * n * d) * 4;
    if (widest > limit) {
      throw new RangeError(
        `a batch of ${n} tokens needs ${widest} bytes in one buffer (d_sae ${m}, ${G} prefixes ` +
          `of d_in ${d}), over this adapter's storage binding limit of ${limit}: use fewer ` +
          `tokens a step with a matryoshka_batchtopk SAE`,
      );
    }
    const buf = (floats: number, label: string) => createBuffer(dev, floats * 4, label);
    this.#batch = {
      n,
      ...this.ioBuffers(n, "matryoshka"),
      pre: buf(n * m, "matryoshka.pre"),
      h: buf(n * m, "matryoshka.h"),
      dh: buf(n * m, "matryoshka.dh"),
      l0: buf(n, "matryoshka.l0"),
      xhats: buf(G * n * d, "matryoshka.xhats"),
      suffix: buf(G * n * d, "matryoshka.suffix"),
      list: buf(mat.listWords(n, m), "matryoshka.list"),
      select: buf(batchTopk.SELECT_STATE_WORDS, "matryoshka.select"),
      hist: buf(batchTopk.SELECT_HIST_BINS, "matryoshka.hist"),
      enc: new Matmul(dev, { M: n, N: m, K: d }, true),
      cols: buf(mat.colWords(n, m), "matryoshka.cols"),
      aux: null,
      auxOn: false,
      hostX: new Float32Array(0),
      hostXhat: new Float32Array(0),
    };
    return this.#batch;
  }

  #auxFor(b: Batch): AuxBatch {
    if (b.aux) return b.aux;
    const n = b.n, d = this.dIn, m = this.dSae;
    const buf = (floats: number, label: string) => createBuffer(this.device, floats * 4, label);
    b.aux = {
      pre: buf(n * m, "auxk.pre"),
      h: buf(n * m, "auxk.h"),
      ehat: buf(n * d, "auxk.ehat"),
      de: buf(n * d, "auxk.de"),
      dh: buf(n * m, "auxk.dh"),
      gDec: buf(m * d, "auxk.gdec"),
    };
    return b.aux;
  }

  protected freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.xc, b.xhat, b.dx, b.pre, b.h, b.dh, b.l0, b.xhats, b.suffix]) {
      x.destroy();
    }
    for (const x of [b.select, b.hist, b.list, b.cols]) x.destroy();
    b.enc.destroy();
    for (const x of Object.values(b.aux ?? {})) x.destroy();
    this.#batch = null;
  }

  /** Every prefix's reconstruction of the last forward, [G][n·d] (tests, per-prefix metrics). */
  async prefixReconstructions(): Promise<Float32Array[]> {
    const b = this.#batch;
    if (!b) throw new Error("prefixReconstructions before forward");
    const nd = b.n * this.dIn;
    const all = await readF32(this.device, b.xhats, this.widths.length * nd);
    return this.widths.map((_, g) => all.slice(g * nd, (g + 1) * nd));
  }

  async forward(x: Float32Array, n: number, inference = false) {
    const d = this.dIn, m = this.dSae, P = this.params, G = this.widths.length;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    if (!inference) batchTopk.clearSelection(this.device, { state: b.select, hist: b.hist });
    // auxk selects among the latents dead so far; it needs the pre-activations, so here.
    b.auxOn = !inference && this.lastDead > 0 && this.auxK > 0 && this.auxCoef > 0;
    const a = b.auxOn ? this.#auxFor(b) : null;
    this.pass("sae.forward", (rec) => {
      dense.center(rec, { x: b.x, bias: P.b_dec, out: b.xc }, { rows: n, cols: d });
      b.enc.record(rec.pass, b.xc, P.W_enc, b.pre, P.b_enc);
      this.#threshold.record(rec, b, { count: n * m, want: this.sae.cfg.k! * n, inference });
      if (a) {
        sparse.maskDead(rec, { pre: b.pre, since: this.firing.tokensSinceFired, out: a.pre }, {
          n,
          m,
          window: Math.min(this.firing.deadWindowTokens, 0xffffffff),
        });
        dense.topkRelu(rec, { pre: a.pre, h: a.h }, { rows: n, cols: m, k: this.auxK });
        mat.prefixDecode(rec, {
          h: a.h,
          list: b.list,
          W_dec: P.W_dec,
          b_dec: this.#zeroBias,
          ends: this.#whole,
          out: a.ehat,
        }, { n, d, m, groups: 1 });
      }
      mat.prefixDecode(rec, {
        h: b.h,
        list: b.list,
        W_dec: P.W_dec,
        b_dec: P.b_dec,
        ends: this.#ends,
        out: b.xhats,
      }, this.#dims);
      dense.countActive(rec, { h: b.h, out: b.l0 }, { rows: n, cols: m });
    });
    // The full reconstruction is the last prefix's, read where it lies in xhats.
    const [xhatBytes, l0s] = await Promise.all([
      readBytes(this.device, b.xhats, n * d * 4, (G - 1) * n * d * 4),
      readF32(this.device, b.l0, n),
      inference ? undefined : this.#threshold.update(b.select),
    ]);
    const xhat = new Float32Array(xhatBytes);
    if (b.auxOn) {
      b.hostX = x.slice();
      b.hostXhat = xhat;
    }
    return { xhat, mse: this.mseOf(x, xhat), l0: l0s.reduce((a, v) => a + v, 0) / n };
  }

  async backward(
    o: { wMse: number; gExt: Float32Array | GPUBuffer | null; wExt: number },
  ): Promise<{ aux: number }> {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    const n = b.n, d = this.dIn, m = this.dSae, P = this.params, G = this.grads;
    if (o.gExt instanceof GPUBuffer) {
      if (o.gExt.size < n * d * 4) {
        throw new RangeError(`∂KL/∂x̂ holds ${o.gExt.size} bytes, expected ${n}×${d} floats`);
      }
      const copy = this.device.createCommandEncoder({ label: "sae.backward.dx" });
      copy.copyBufferToBuffer(o.gExt, 0, b.dx, 0, n * d * 4);
      this.device.queue.submit([copy.finish()]);
    } else if (o.gExt) {
      if (o.gExt.length !== n * d) {
        throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
      }
      write(this.device, b.dx, o.gExt);
    }
    const dims = this.#dims, ends = this.#ends;
    this.pass("sae.backward", (rec) => {
      mat.suffixResidual(rec, { xhats: b.xhats, x: b.x, gExt: b.dx, ends, out: b.suffix }, {
        ...dims,
        a: o.wMse * 2 / (n * d),
        b: o.gExt ? o.wExt : 0,
      });
      mat.latentGrad(rec, { suffix: b.suffix, W_dec: P.W_dec, h: b.h, ends, out: b.dh }, dims);
      mat.decoderGrad(rec, { h: b.h, suffix: b.suffix, ends, cols: b.cols, out: G.W_dec }, dims);
    });
    const aux = b.auxOn ? await this.#auxk(b) : 0;
    this.pass("sae.backward.encoder", (rec) => {
      mat.encoderGrad(rec, { xc: b.xc, dh: b.dh, ends, cols: b.cols, out: G.W_enc }, dims);
      dense.colSum(rec, { m: b.dh, out: G.b_enc }, { rows: n, cols: m });
      // b_dec is in every prefix (the first suffix sum holds them all) and in the encoder input.
      dense.colSum(rec, { m: b.suffix, out: G.b_dec }, { rows: n, cols: d });
      dense.bdecGrad(rec, { W_enc: P.W_enc, dbEnc: G.b_enc, out: G.b_dec }, { rows: d, cols: m });
      this.firing.record(rec.pass, n, { kind: "dense", h: b.h, n: m });
      this.firing.recordDeadCount(rec.pass);
    });
    return { aux };
  }

  /** Adds the auxk gradients to ∂L/∂pre and ∂W_dec; returns coef · the normalised auxk loss. */
  async #auxk(b: Batch): Promise<number> {
    const n = b.n, d = this.dIn, m = this.dSae, a = this.#auxFor(b), P = this.params;
    const ehat = await readF32(this.device, a.ehat, n * d);
    const de = new Float32Array(n * d);
    const loss = auxkResidual(b.hostX, b.hostXhat, ehat, n, d, this.auxCoef, de);
    if (loss === null) return 0;
    write(this.device, a.de, de);
    const dims = { n, d, m, groups: 1 }, ends = this.#whole;
    this.pass("sae.auxk.backward", (rec) => {
      mat.latentGrad(rec, { suffix: a.de, W_dec: P.W_dec, h: a.h, ends, out: a.dh }, dims);
      dense.addInto(rec, { src: a.dh, out: b.dh }, { rows: n, cols: m });
      mat.decoderGrad(rec, { h: a.h, suffix: a.de, ends, cols: b.cols, out: a.gDec }, dims);
      dense.addInto(rec, { src: a.gDec, out: this.grads.W_dec }, { rows: m, cols: d });
    });
    return loss;
  }

  override async restore(state: TrainerState): Promise<void> {
    await super.restore(state);
    this.#threshold.restore(state);
  }

  override release(): void {
    super.release();
    for (const x of [this.#ends, this.#whole, this.#zeroBias]) x.destroy();
  }
}
