// The TopK SAE step on the CPU, for machines whose WebGPU adapter is a software rasteriser: the
// dense encoder product and the top-k run as an ONNX graph on the native runtime's CPU EP
// (sae/cpu/encoder_graph.ts: every core, vectorised), everything sparse or elementwise in JS over
// Float32Arrays on the host (sae/cpu/kernels.ts), each loop split between the main thread and a
// helper thread (sae/cpu/helper.ts) where there are two cores. The same step as TopKGpuTrainer
// (sae/topk_trainer.ts, gpu/*.ts), term by term: decode of K rows a token, wMse·mse +
// wExt·⟨gExt, x̂⟩ + the auxk loss on dead latents, b_dec's gradient through the encoder input, the
// decoder constraint, global-norm clipping, AdamW on every parameter (biases decay too), the firing
// statistics; and the same checkpoint tensors, so a checkpoint moves between the two.
// W_enc is held transposed ([d_sae, d_in]) so the per-latent gradient sums write contiguous rows;
// state() and toSae() hand it back [d_in, d_sae] like every other trainer. What the helper reads or
// writes lives in SharedArrayBuffers; what ORT reads (xc, W_enc, b_enc) in plain ones, as
// onnxruntime-node refuses shared memory.
// ORT's native `run` computes on the calling thread: the main thread is busy for the encoder (a few
// ms a step at the default size), as it is for the JS half.
import { auxkResidual } from "./auxk.ts";
import { TOPK_MAX_K } from "../gpu/topk.ts";
import {
  cpuThreads,
  loadNativeOrt,
  type NativeOrt,
  nativeSessionOptions,
} from "../lm/native_ort.ts";
import { encoderModel } from "./cpu/encoder_graph.ts";
import { CpuHelper, sharedF32, sharedI32 } from "./cpu/helper.ts";
import {
  type AdamScalars,
  adamw,
  decodeRows,
  latentIndex,
  normalizeRows,
  removeParallel,
  sparseGradRows,
  splitLatent,
  sumOfSquares,
} from "./cpu/kernels.ts";
import {
  checkpointData,
  meanSquaredError,
  type TrainerOptions,
  type TrainerState,
} from "./gpu_trainer.ts";
import type { OwnedTrainer } from "./trainer.ts";
import type { Sae, SaeConfig } from "./types.ts";
import { checkWeights } from "./params.ts";

export interface CpuTopKTrainerOptions extends TrainerOptions {
  /** Latents in the auxk reconstruction (default as TopKGpuTrainer: d_in / 2, at most 64). */
  auxK?: number;
  /** Weight of the auxk loss (default 1/32, as Gao et al.). */
  auxCoef?: number;
  /** Threads: the CPU EP's, and with two or more a helper thread for the JS loops (default every core). */
  threads?: number;
}

type Session = Awaited<ReturnType<NativeOrt["InferenceSession"]["create"]>>;
type Params = Record<"W_enc_t" | "b_enc" | "W_dec" | "b_dec", Float32Array>;

/** Checkpoint names in the GPU trainers' order; W_enc is stored [d_in, d_sae] there. */
const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;
const INTERNAL = { W_enc: "W_enc_t", b_enc: "b_enc", W_dec: "W_dec", b_dec: "b_dec" } as const;
const U32_MAX = 0xffffffff;
const BETA1 = 0.9, BETA2 = 0.999, EPS = 1e-8;

/** One batch size's arrays (made again when n changes). */
interface Batch {
  n: number;
  x: Float32Array;
  /** x − b_dec: `xc` (shared, for the gradients) and `xcFeed` (plain, for ORT). */
  xc: Float32Array;
  xcFeed: Float32Array;
  xhat: Float32Array;
  dx: Float32Array;
  /** The k selected latents of each token and their ReLU'd values, [n, k]. */
  idx: Int32Array;
  val: Float32Array;
  /** The auxk selection among dead latents, [n, kAux] (kAux = 0: auxk off this step). */
  auxIdx: Int32Array;
  auxVal: Float32Array;
  kAux: number;
  /** auxk's reconstruction of the residual and its gradient, [n, d_in]. */
  ehat: Float32Array;
  de: Float32Array;
  /** Whether forward ran since the arrays were made (backward needs it). */
  ready: boolean;
}

/** The kinds the CPU trainer trains, for messages. */
export const CPU_SAE_KINDS = "topk (an SAE, not a transcoder)";

/** Whether the CPU trainer trains this SAE. */
export function cpuTrains(cfg: Pick<SaeConfig, "kind" | "transcoder">): boolean {
  return cfg.kind === "topk" && !cfg.transcoder;
}

/** Why sae_device "cpu" cannot train this SAE (what to use instead), or null when it can. */
export function cpuRefusal(cfg: Pick<SaeConfig, "kind" | "transcoder">): string | null {
  if (cpuTrains(cfg)) return null;
  const what = cfg.transcoder ? `a ${cfg.kind} transcoder` : `a ${cfg.kind} SAE`;
  return `sae_device "cpu" trains ${CPU_SAE_KINDS}, not ${what}; use sae_device "webgpu" or "auto"`;
}

export class CpuTopKTrainer implements OwnedTrainer {
  readonly dIn: number;
  readonly dSae: number;
  readonly k: number;
  readonly auxK: number;
  readonly auxCoef: number;
  readonly deadWindow: number;
  #ort: NativeOrt;
  #enc: Session;
  #encAux: Session | null = null;
  #threads: number;
  #helper: CpuHelper | null;
  #p: Params;
  #g: Params;
  #m: Params;
  #v: Params;
  #zeroBias: Float32Array;
  /** The SAE's threshold, if it has one: kept and checkpointed, never trained (as the GPU). */
  #threshold: Float32Array | undefined;
  #t = 0;
  /** Tokens since each latent last fired (saturating at 2³²−1), and firings in the window. */
  readonly tokensSinceFired: Float64Array;
  readonly windowCounts: Float64Array;
  /** The latents dead as of the last step: the next training forward's auxk candidates. */
  #dead: number[] = [];
  #batch: Batch | null = null;
  #released = false;

  private constructor(
    readonly sae: Sae,
    readonly opts: CpuTopKTrainerOptions,
    ort: NativeOrt,
    enc: Session,
    threads: number,
  ) {
    const { cfg, weights: w } = sae;
    const d = cfg.dIn, m = cfg.dSae;
    this.dIn = d;
    this.dSae = m;
    this.k = cfg.k!;
    this.auxK = Math.min(opts.auxK ?? Math.max(1, d >> 1), TOPK_MAX_K, m);
    this.auxCoef = opts.auxCoef ?? 1 / 32;
    this.deadWindow = Math.min(opts.deadWindowTokens ?? 1_000_000, U32_MAX);
    this.#ort = ort;
    this.#enc = enc;
    this.#threads = threads;
    this.#helper = threads >= 2 ? new CpuHelper() : null;
    // W_enc and b_enc are ORT inputs (plain memory); the rest is shared with the helper.
    const zeros = (): Params => ({
      W_enc_t: new Float32Array(d * m),
      b_enc: new Float32Array(m),
      W_dec: sharedF32(m * d),
      b_dec: sharedF32(d),
    });
    this.#p = zeros();
    this.#p.W_enc_t.set(transpose(w.W_enc, d, m));
    this.#p.b_enc.set(w.b_enc);
    this.#p.W_dec.set(w.W_dec);
    this.#p.b_dec.set(w.b_dec);
    this.#g = {
      W_enc_t: sharedF32(d * m),
      b_enc: sharedF32(m),
      W_dec: sharedF32(m * d),
      b_dec: new Float32Array(d),
    };
    this.#m = zeros();
    this.#v = zeros();
    this.#zeroBias = sharedF32(d);
    this.#threshold = w.threshold?.slice();
    this.tokensSinceFired = new Float64Array(m);
    this.windowCounts = new Float64Array(m);
  }

  /** A trainer for a plain TopK SAE; anything else is an error naming what it trains. */
  static async create(sae: Sae, opts: CpuTopKTrainerOptions): Promise<CpuTopKTrainer> {
    const { cfg } = sae;
    const refusal = cpuRefusal(cfg);
    if (refusal) throw new Error(refusal);
    if (!(Number.isInteger(cfg.k) && cfg.k! >= 1 && cfg.k! <= cfg.dSae)) {
      throw new RangeError(`topk SAE: k must be in [1, d_sae=${cfg.dSae}], got ${cfg.k}`);
    }
    checkWeights(sae);
    const d = cfg.dIn, m = cfg.dSae;
    const ort = await loadNativeOrt();
    const threads = opts.threads ?? cpuThreads();
    const enc = await createEncoder(ort, { dIn: d, dSae: m, k: cfg.k!, auxk: false }, threads);
    return new CpuTopKTrainer(sae, opts, ort, enc, threads);
  }

  #alive(): void {
    if (this.#released) throw new Error("the cpu SAE trainer was released");
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    const d = this.dIn, k = this.k;
    this.#batch = {
      n,
      x: new Float32Array(n * d),
      xc: sharedF32(n * d),
      xcFeed: new Float32Array(n * d),
      xhat: sharedF32(n * d),
      dx: sharedF32(n * d),
      idx: sharedI32(n * k),
      val: sharedF32(n * k),
      auxIdx: sharedI32(0),
      auxVal: sharedF32(0),
      kAux: 0,
      ehat: sharedF32(n * d),
      de: sharedF32(n * d),
      ready: false,
    };
    return this.#batch;
  }

  /** decodeRows over all n tokens, the second half on the helper. */
  async #decode(a: Parameters<typeof decodeRows>[0], n: number, k: number): Promise<void> {
    const d = this.dIn, h = this.#helper;
    const mid = h ? n >> 1 : n;
    const other = h && mid < n
      ? h.run({ kind: "decode", a, d, k, t0: mid, t1: n })
      : Promise.resolve(0);
    decodeRows(a, d, k, 0, mid);
    await other;
  }

  /** The sparse gradients of one (idx, val) selection, latents split by entries between threads. */
  async #sparseGrads(
    idx: Int32Array,
    val: Float32Array,
    dx: Float32Array,
    xc: Float32Array,
    k: number,
    accumulate: boolean,
  ): Promise<void> {
    const d = this.dIn, m = this.dSae, G = this.#g, h = this.#helper;
    const { offs, list } = latentIndex(idx, val, m, h ? sharedI32 : (n) => new Int32Array(n));
    const a = {
      offs,
      list,
      val,
      dx,
      xc,
      W_dec: this.#p.W_dec,
      gW_dec: G.W_dec,
      gW_enc_t: G.W_enc_t,
      gb_enc: G.b_enc,
    };
    const mid = h ? splitLatent(offs) : m;
    const other = h && mid < m
      ? h.run({ kind: "grads", a, d, k, j0: mid, j1: m, accumulate })
      : Promise.resolve(0);
    sparseGradRows(a, d, k, 0, mid, accumulate);
    await other;
  }

  async forward(x: Float32Array, n: number, inference = false, target?: Float32Array) {
    this.#alive();
    if (target !== undefined) {
      throw new Error(
        "the cpu SAE trainer reconstructs its input; it does not train transcoders (a target " +
          'was given): use sae_device "webgpu"',
      );
    }
    const d = this.dIn, m = this.dSae, k = this.k, P = this.#p;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    b.ready = false;
    b.x.set(x);
    for (let t = 0, q = 0; t < n; t++) {
      for (let i = 0; i < d; i++, q++) b.xcFeed[q] = x[q] - P.b_dec[i];
    }
    b.xc.set(b.xcFeed);
    // auxk selects among the latents dead so far (as of the last step), so in this forward.
    const dead = !inference && this.auxK > 0 && this.auxCoef > 0 ? this.#dead : [];
    const ort = this.#ort;
    const feeds: Record<string, InstanceType<NativeOrt["Tensor"]>> = {
      xc: new ort.Tensor("float32", b.xcFeed, [n, d]),
      W_enc_t: new ort.Tensor("float32", P.W_enc_t, [m, d]),
      b_enc: new ort.Tensor("float32", P.b_enc, [m]),
    };
    const kAux = Math.min(this.auxK, dead.length);
    let session = this.#enc;
    if (kAux > 0) {
      this.#encAux ??= await createEncoder(
        ort,
        { dIn: d, dSae: m, k, auxk: true },
        this.#threads,
      );
      session = this.#encAux;
      const deadIdx = new BigInt64Array(dead.length);
      for (let q = 0; q < dead.length; q++) deadIdx[q] = BigInt(dead[q]);
      feeds.dead_idx = new ort.Tensor("int64", deadIdx, [dead.length]);
      feeds.aux_k = new ort.Tensor("int64", BigInt64Array.of(BigInt(kAux)), [1]);
    }
    const out = await session.run(feeds);
    int64Indices(out.idx.data as BigInt64Array, b.idx);
    relu(out.val.data as Float32Array, b.val);
    b.kAux = kAux;
    if (kAux > 0) {
      if (b.auxIdx.length !== n * kAux) {
        b.auxIdx = sharedI32(n * kAux);
        b.auxVal = sharedF32(n * kAux);
      }
      int64Indices(out.aux_pos.data as BigInt64Array, b.auxIdx);
      for (let e = 0; e < b.auxIdx.length; e++) b.auxIdx[e] = dead[b.auxIdx[e]];
      relu(out.aux_val.data as Float32Array, b.auxVal);
    }
    await this.#decode(
      { idx: b.idx, val: b.val, W_dec: P.W_dec, bias: P.b_dec, out: b.xhat },
      n,
      k,
    );
    let active = 0;
    for (let e = 0; e < n * k; e++) if (b.val[e] > 0) active++;
    b.ready = true;
    return { xhat: new Float32Array(b.xhat), mse: meanSquaredError(x, b.xhat), l0: active / n };
  }

  /** Latents without a firing for the dead window, as the GPU's mask_dead reads them. */
  #deadLatents(): number[] {
    const out: number[] = [];
    const since = this.tokensSinceFired;
    for (let j = 0; j < this.dSae; j++) if (since[j] >= this.deadWindow) out.push(j);
    return out;
  }

  async backwardAndStep(o: {
    wMse: number;
    gExt: Float32Array | GPUBuffer | null;
    wExt: number;
    lr: number;
    l1?: number;
  }): Promise<{ gradNorm: number; aux: number; dead: number }> {
    this.#alive();
    const b = this.#batch;
    if (!b?.ready) throw new Error("backwardAndStep before forward");
    if (!Number.isFinite(o.lr) || o.lr < 0) {
      throw new Error(`AdamW: learning rate ${o.lr} is invalid`);
    }
    const n = b.n, d = this.dIn, m = this.dSae, k = this.k, P = this.#p, G = this.#g;
    if (o.gExt !== null && !(o.gExt instanceof Float32Array)) {
      throw new Error(
        "the cpu SAE trainer takes ∂KL/∂x̂ as a host Float32Array, not a GPU buffer; run the LM " +
          'on a cpu/cuda/wasm EP, or use sae_device "webgpu"',
      );
    }
    if (o.gExt && o.gExt.length !== n * d) {
      throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
    }
    // ∂L/∂x̂ = wMse·2(x̂ − x)/(n·d) + wExt·gExt
    const a = Math.fround(o.wMse * 2 / (n * d)), bw = Math.fround(o.gExt ? o.wExt : 0);
    const dx = b.dx, g = o.gExt;
    for (let q = 0; q < n * d; q++) dx[q] = a * (b.xhat[q] - b.x[q]) + (g ? bw * g[q] : 0);
    await this.#sparseGrads(b.idx, b.val, dx, b.xc, k, false);
    const aux = b.kAux > 0 ? await this.#auxk(b) : 0;
    // b_dec enters the decoder output and the encoder input: Σ_t dx̂ − W_enc·∂b_enc.
    const gbd = new Float64Array(d);
    for (let t = 0, q = 0; t < n; t++) {
      for (let i = 0; i < d; i++, q++) gbd[i] += dx[q];
    }
    for (let j = 0; j < m; j++) {
      const gb = G.b_enc[j];
      if (gb === 0) continue;
      const r = j * d;
      for (let i = 0; i < d; i++) gbd[i] -= P.W_enc_t[r + i] * gb;
    }
    G.b_dec.set(gbd);
    this.#recordFiring(b);
    const dead = this.#deadLatents();
    const gradNorm = await this.#optimizerStep(o.lr);
    this.#dead = dead;
    b.ready = false;
    return { gradNorm, aux, dead: dead.length };
  }

  /** Adds the auxk gradients (Gao et al., as TopKGpuTrainer); returns coef · the normalised loss. */
  async #auxk(b: Batch): Promise<number> {
    const n = b.n, d = this.dIn, ka = b.kAux, P = this.#p;
    await this.#decode(
      { idx: b.auxIdx, val: b.auxVal, W_dec: P.W_dec, bias: this.#zeroBias, out: b.ehat },
      n,
      ka,
    );
    const loss = auxkResidual(b.x, b.xhat, b.ehat, n, d, this.auxCoef, b.de);
    if (loss === null) return 0;
    await this.#sparseGrads(b.auxIdx, b.auxVal, b.de, b.xc, ka, true);
    return loss;
  }

  #recordFiring(b: Batch): void {
    const fired = new Uint32Array(this.dSae);
    for (let e = 0; e < b.n * this.k; e++) if (b.val[e] !== 0) fired[b.idx[e]]++;
    const since = this.tokensSinceFired, win = this.windowCounts;
    for (let j = 0; j < this.dSae; j++) {
      win[j] = Math.min(win[j] + fired[j], U32_MAX);
      since[j] = fired[j] > 0 ? 0 : Math.min(since[j] + b.n, U32_MAX);
    }
  }

  /** Dead latents now. */
  deadLatents(): Promise<number> {
    return Promise.resolve(this.#deadLatents().length);
  }

  /**
   * The decoder constraint's projection, global-norm clipping, one AdamW step and the
   * renormalisation, as GpuSaeTrainer.optimizerStep; returns the pre-clip norm. W_dec's share runs
   * on the helper, the other parameters' on the main thread.
   */
  async #optimizerStep(lr: number): Promise<number> {
    const d = this.dIn, P = this.#p, G = this.#g, h = this.#helper;
    const constrain = this.opts.decoderConstraint;
    const project = { kind: "project" as const, W_dec: P.W_dec, gW_dec: G.W_dec, d, constrain };
    const decSq = h ? h.run(project) : Promise.resolve(0);
    if (!h) {
      if (constrain) removeParallel(P.W_dec, G.W_dec, d);
    }
    let sq = sumOfSquares(G.W_enc_t) + sumOfSquares(G.b_enc) + sumOfSquares(G.b_dec);
    sq += h ? await decSq : sumOfSquares(G.W_dec);
    const norm = Math.sqrt(sq);
    const clip = this.opts.gradClip;
    const scale = Number.isFinite(clip) && clip > 0 ? Math.min(1, clip / (norm + 1e-6)) : 1;
    this.#t += 1;
    const bc1 = 1 - BETA1 ** this.#t, bc2 = 1 - BETA2 ** this.#t;
    // f32 constants, as the AdamW kernel's uniforms.
    const f = Math.fround;
    const s: AdamScalars = {
      b1: f(BETA1),
      b2: f(BETA2),
      omb1: f(1 - BETA1),
      omb2: f(1 - BETA2),
      eps: f(EPS),
      decay: f(1 - lr * this.opts.weightDecay),
      step: f(lr / bc1),
      invSqrtBc2: f(1 / Math.sqrt(bc2)),
      gscale: f(scale),
    };
    const dec = { p: P.W_dec, g: G.W_dec, m: this.#m.W_dec, v: this.#v.W_dec };
    const decDone = h
      ? h.run({ kind: "adam", ...dec, h: s, normalizeRows: constrain, d })
      : Promise.resolve(0);
    for (const key of ["W_enc_t", "b_enc", "b_dec"] as const) {
      adamw(P[key], G[key], this.#m[key], this.#v[key], s);
    }
    if (h) await decDone;
    else {
      adamw(dec.p, dec.g, dec.m, dec.v, s);
      if (constrain) normalizeRows(P.W_dec, d);
    }
    return Math.fround(norm);
  }

  /**
   * ∂⟨g, x̂⟩/∂x for the last forward's x (the SAE held fixed): Σ over each token's active latents
   * of (g·W_dec,j)·W_enc[:, j], as TopKGpuTrainer.inputGradient.
   */
  inputGradient(g: Float32Array): Promise<Float32Array> {
    return settled(() => this.#inputGradient(g));
  }

  #inputGradient(g: Float32Array): Float32Array {
    this.#alive();
    const b = this.#batch;
    if (!b?.ready) throw new Error("inputGradient before forward");
    const n = b.n, d = this.dIn, k = this.k, P = this.#p;
    if (g.length !== n * d) throw new RangeError(`inputGradient: g has ${g.length}, not ${n * d}`);
    const out = new Float32Array(n * d);
    for (let t = 0; t < n; t++) {
      const o = t * d;
      for (let s = 0; s < k; s++) {
        if (!(b.val[t * k + s] > 0)) continue;
        const r = b.idx[t * k + s] * d;
        let dv = 0;
        for (let i = 0; i < d; i++) dv += g[o + i] * P.W_dec[r + i];
        for (let i = 0; i < d; i++) out[o + i] += dv * P.W_enc_t[r + i];
      }
    }
    return out;
  }

  /** Weights, Adam moments and step count under the GPU trainers' names and shapes. */
  state(): Promise<TrainerState> {
    return settled(() => this.#state());
  }

  #state(): TrainerState {
    this.#alive();
    const d = this.dIn, m = this.dSae;
    const out: TrainerState = new Map();
    const external = (a: Float32Array, name: (typeof NAMES)[number]) =>
      name === "W_enc" ? transpose(a, m, d) : a.slice();
    for (const name of NAMES) {
      const key = INTERNAL[name];
      for (const [prefix, set] of [["", this.#p], ["m.", this.#m], ["v.", this.#v]] as const) {
        const data = external(set[key], name);
        out.set(`${prefix}${name}`, { data, shape: [data.length] });
      }
    }
    out.set("adam.t", { data: Float32Array.of(this.#t), shape: [1] });
    if (this.#threshold) {
      out.set("threshold", { data: this.#threshold.slice(), shape: [this.#threshold.length] });
    }
    return out;
  }

  restore(state: TrainerState): Promise<void> {
    return settled(() => this.#restore(state));
  }

  #restore(state: TrainerState): void {
    this.#alive();
    const d = this.dIn, m = this.dSae;
    // Checked before anything is written, so a bad checkpoint leaves the trainer as it was.
    const sizes = { W_enc: d * m, b_enc: m, W_dec: m * d, b_dec: d };
    for (const name of NAMES) {
      for (const key of [name, `m.${name}`, `v.${name}`]) checkpointData(state, key, sizes[name]);
    }
    for (const name of NAMES) {
      const key = INTERNAL[name];
      for (const [prefix, set] of [["", this.#p], ["m.", this.#m], ["v.", this.#v]] as const) {
        const data = state.get(`${prefix}${name}`)!.data;
        set[key].set(name === "W_enc" ? transpose(data, d, m) : data);
      }
    }
    this.#t = state.get("adam.t")?.data[0] ?? 0;
    const th = state.get("threshold");
    if (this.#threshold && th) this.#threshold.set(th.data);
  }

  toSae(): Promise<Sae> {
    return settled(() => this.#toSae());
  }

  #toSae(): Sae {
    this.#alive();
    const P = this.#p;
    const weights: Sae["weights"] = {
      W_enc: transpose(P.W_enc_t, this.dSae, this.dIn),
      b_enc: P.b_enc.slice(),
      W_dec: P.W_dec.slice(),
      b_dec: P.b_dec.slice(),
    };
    if (this.#threshold) weights.threshold = this.#threshold.slice();
    return { cfg: structuredClone(this.sae.cfg), weights };
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#batch = null;
    this.#helper?.terminate();
    for (const s of [this.#enc, this.#encAux]) {
      s?.release().catch((e: Error) =>
        console.error(`splice: cpu SAE session release: ${e.message}`)
      );
    }
  }
}

/** fn's result as a promise; what it throws, a rejection (as the GPU trainers' async methods). */
function settled<T>(fn: () => T): Promise<T> {
  return new Promise((resolve) => resolve(fn()));
}

function createEncoder(
  ort: NativeOrt,
  dims: Parameters<typeof encoderModel>[0],
  threads: number,
): Promise<Session> {
  return ort.InferenceSession.create(encoderModel(dims), nativeSessionOptions("cpu", threads, 2));
}

/**
 * TopK's int64 indices as int32 into `out`: they are below 2³¹ and non-negative, so each is the low
 * word (little-endian, as every platform onnxruntime-node ships for). TypedArray.from with a map
 * function costs ~100× this loop.
 */
function int64Indices(a: BigInt64Array, out: Int32Array): void {
  const words = new Int32Array(a.buffer, a.byteOffset, a.length * 2);
  for (let e = 0; e < a.length; e++) out[e] = words[2 * e];
}

/** out = max(a, 0). */
function relu(a: Float32Array, out: Float32Array): void {
  for (let e = 0; e < a.length; e++) out[e] = a[e] > 0 ? a[e] : 0;
}

/** [rows, cols] → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  }
  return out;
}
