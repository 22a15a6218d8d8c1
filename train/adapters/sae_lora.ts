// LoRA on the SAE's own weights (paper Appendix D): W_enc' = W_enc + (α/r)·A_e·B_e and
// W_dec' = W_dec + (α/r)·A_d·B_d, B zero at the start (the SAE unchanged), the base weights and the
// biases frozen. The GPU trainer computes ∂L/∂W' as usual (backward without a step); the LoRA
// factors' gradients follow on the host: ∂A = s·∂W'·Bᵀ, ∂B = s·Aᵀ·∂W'.
// Dropout (p > 0) zeroes input features of the LoRA path — rows of A — and scales the rest by
// 1/(1−p), with one mask per training step shared by the batch's tokens, so the adapted weights
// stay a merge W + s·(M·A)·B the GPU kernels run as they are (peft draws a mask per token, which
// would need the LoRA path computed apart from W). Evaluation uses no mask.
import { readF32, write } from "../../gpu/buffers.ts";
import { Rng } from "../../lib/rng.ts";
import type { GpuSaeTrainer, TrainerState } from "../../sae/gpu_trainer.ts";
import type { Sae } from "../../sae/types.ts";
import type { OwnedTrainer } from "../../sae/trainer.ts";
import { HostAdamW } from "./host_adamw.ts";
import { matmul } from "./types.ts";

export interface SaeLoraOptions {
  rank: number;
  alpha: number;
  weightDecay: number;
  gradClip: number;
  seed?: number;
  /** Dropout probability of the LoRA path's input features (default 0). */
  dropout?: number;
}

export class SaeLoraTrainer implements OwnedTrainer {
  readonly dIn: number;
  readonly factors: Record<"A_enc" | "B_enc" | "A_dec" | "B_dec", Float32Array>;
  /** Gradients of the factors at the last step, before clipping. */
  lastGrads: Record<string, Float32Array> = {};
  #opt: HostAdamW;
  #base: { W_enc: Float32Array; W_dec: Float32Array };
  #scale: number;
  #rng: Rng;
  /** Per-row multipliers of A_enc and A_dec for this step (0 or 1/(1−p)); null: no dropout. */
  #mask: { enc: Float32Array; dec: Float32Array } | null = null;

  constructor(readonly inner: GpuSaeTrainer, readonly sae: Sae, readonly o: SaeLoraOptions) {
    const { dIn: d, dSae: n } = sae.cfg, r = o.rank;
    if (!(Number.isInteger(r) && r >= 1 && r <= Math.min(d, n))) {
      throw new RangeError(`SAE LoRA: rank must be in [1, ${Math.min(d, n)}], got ${r}`);
    }
    this.dIn = d;
    this.#scale = o.alpha / r;
    this.#base = { W_enc: sae.weights.W_enc.slice(), W_dec: sae.weights.W_dec.slice() };
    const rng = new Rng(o.seed ?? 0);
    const rand = (len: number, fanIn: number) =>
      Float32Array.from({ length: len }, () => rng.normal() / Math.sqrt(fanIn));
    this.factors = {
      A_enc: rand(d * r, d),
      B_enc: new Float32Array(r * n),
      A_dec: rand(n * r, n),
      B_dec: new Float32Array(r * d),
    };
    this.#opt = new HostAdamW(this.factors, { weightDecay: o.weightDecay, clip: o.gradClip });
    const p = o.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new RangeError(`SAE LoRA: dropout must be in [0, 1), got ${p}`);
    this.#rng = new Rng((o.seed ?? 0) ^ 0x5bd1e995);
  }

  /** The step's dropout multipliers of A_enc's and A_dec's rows (null without dropout). */
  get dropoutMask(): { enc: Float32Array; dec: Float32Array } | null {
    return this.#mask;
  }

  /** A with its rows multiplied by the step's mask (A itself when there is none). */
  #masked(A: Float32Array, rowMask: Float32Array | undefined): Float32Array {
    if (!rowMask) return A;
    const r = this.o.rank;
    return A.map((v, e) => v * rowMask[Math.floor(e / r)]);
  }

  /** The adapted weights W + s·A·B. */
  merged(): { W_enc: Float32Array; W_dec: Float32Array } {
    const { dIn: d, dSae: n } = this.sae.cfg, r = this.o.rank, F = this.factors;
    const Ae = this.#masked(F.A_enc, this.#mask?.enc), Ad = this.#masked(F.A_dec, this.#mask?.dec);
    const enc = matmul(Ae, F.B_enc, d, r, n).map((v, i) => this.#base.W_enc[i] + this.#scale * v);
    const dec = matmul(Ad, F.B_dec, n, r, d).map((v, i) => this.#base.W_dec[i] + this.#scale * v);
    return { W_enc: enc, W_dec: dec };
  }

  forward(x: Float32Array, n: number, inference?: boolean) {
    const p = this.o.dropout ?? 0;
    this.#mask = null;
    if (p > 0 && !inference) {
      const draw = (len: number) =>
        Float32Array.from({ length: len }, () => (this.#rng.next() < p ? 0 : 1 / (1 - p)));
      this.#mask = { enc: draw(this.sae.cfg.dIn), dec: draw(this.sae.cfg.dSae) };
    }
    const w = this.merged();
    write(this.inner.device, this.inner.params.W_enc, w.W_enc);
    write(this.inner.device, this.inner.params.W_dec, w.W_dec);
    return this.inner.forward(x, n, inference);
  }

  async backwardAndStep(
    o: { wMse: number; gExt: Float32Array | null; wExt: number; lr: number; l1?: number },
  ) {
    const { aux } = await this.inner.backward(o);
    const { dIn: d, dSae: n } = this.sae.cfg, r = this.o.rank, s = this.#scale, F = this.factors;
    const dev = this.inner.device;
    const gEnc = await readF32(dev, this.inner.grads.W_enc, d * n);
    const gDec = await readF32(dev, this.inner.grads.W_dec, n * d);
    const scaled = (a: Float32Array) => a.map((v) => v * s);
    // With W' = W + s·(M·A)·B: ∂A = M·(s·∂W'·Bᵀ), ∂B = s·(M·A)ᵀ·∂W'.
    const Ae = this.#masked(F.A_enc, this.#mask?.enc), Ad = this.#masked(F.A_dec, this.#mask?.dec);
    const grads = {
      A_enc: this.#masked(
        scaled(matmul(gEnc, F.B_enc, d, n, r, { transB: true })),
        this.#mask?.enc,
      ),
      B_enc: scaled(matmul(Ae, gEnc, r, d, n, { transA: true })),
      A_dec: this.#masked(
        scaled(matmul(gDec, F.B_dec, n, d, r, { transB: true })),
        this.#mask?.dec,
      ),
      B_dec: scaled(matmul(Ad, gDec, r, n, d, { transA: true })),
    };
    this.lastGrads = grads;
    const gradNorm = this.#opt.step(grads, o.lr);
    return { gradNorm, aux, dead: await this.inner.deadLatents() };
  }

  state(): Promise<TrainerState> {
    const out: TrainerState = new Map();
    for (const [k, v] of Object.entries(this.factors)) {
      out.set(`lora.${k}`, { data: v.slice(), shape: [v.length] });
      out.set(`lora.m.${k}`, { data: Float32Array.from(this.#opt.m[k]), shape: [v.length] });
      out.set(`lora.v.${k}`, { data: Float32Array.from(this.#opt.v[k]), shape: [v.length] });
    }
    out.set("lora.t", { data: Float32Array.of(this.#opt.t), shape: [1] });
    // The dropout stream's state (a u32) in two 16-bit halves, exact in float32, so a resumed run
    // draws the same masks.
    const st = this.#rng.state;
    out.set("lora.rng", { data: Float32Array.of(st >>> 16, st & 0xffff), shape: [2] });
    return Promise.resolve(out);
  }

  restore(state: TrainerState): Promise<void> {
    for (const [k, v] of Object.entries(this.factors)) {
      const get = (key: string) => {
        const t = state.get(key);
        if (!t || t.data.length !== v.length) throw new Error(`checkpoint: ${key} is missing`);
        return t.data;
      };
      v.set(get(`lora.${k}`));
      this.#opt.m[k].set(get(`lora.m.${k}`));
      this.#opt.v[k].set(get(`lora.v.${k}`));
    }
    this.#opt.t = state.get("lora.t")?.data[0] ?? 0;
    const rng = state.get("lora.rng");
    if (rng) this.#rng.state = ((rng.data[0] << 16) | rng.data[1]) >>> 0;
    return Promise.resolve();
  }

  /** The SAE with the LoRA update merged in (what the arm produced). */
  toSae(): Promise<Sae> {
    this.#mask = null;
    const w = this.merged();
    return Promise.resolve({
      cfg: structuredClone(this.sae.cfg),
      weights: { ...this.sae.weights, W_enc: w.W_enc, W_dec: w.W_dec },
    });
  }

  release(): void {
    this.inner.release();
  }
}
