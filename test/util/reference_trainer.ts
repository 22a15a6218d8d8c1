// A float64 TopK SaeTrainer over test/util/reference_finetune.ts: lets the fine-tune loop be tested
// against the closed-form reference, independently of the GPU engine.
import type { SaeTrainer } from "../../train/finetune.ts";
import { type Adam64, referenceStep, type Sae64, topkForward } from "./reference_finetune.ts";

export class ReferenceTrainer implements SaeTrainer {
  readonly dIn: number;
  adam: Adam64 = { m: {}, v: {}, t: 0 };
  /** Gradients of the last step (before clipping), for tests. */
  lastGrads: Record<string, Float64Array> = {};
  lastAlphaInputs: { wMse: number; wExt: number } | null = null;
  #x: Float64Array | null = null;
  #n = 0;
  constructor(
    readonly sae: Sae64,
    readonly opts: { weightDecay: number; clip: number },
  ) {
    this.dIn = sae.dIn;
  }

  forward(x: Float32Array, n: number) {
    this.#x = Float64Array.from(x);
    this.#n = n;
    const f = topkForward(this.sae, this.#x, n);
    let mse = 0;
    for (let e = 0; e < x.length; e++) mse += (f.xhat[e] - this.#x[e]) ** 2;
    let l0 = 0;
    for (const a of f.active) l0 += a;
    return Promise.resolve({ xhat: Float32Array.from(f.xhat), mse: mse / x.length, l0: l0 / n });
  }

  backwardAndStep(o: { wMse: number; gExt: Float32Array | null; wExt: number; lr: number }) {
    // The KL gradient comes from the LM session here, so it is injected rather than recomputed.
    const r = referenceStep(
      this.sae,
      this.adam,
      this.#x!,
      new Float64Array(0),
      new Float64Array(0),
      this.#n,
      0,
      {
        objective: "mse",
        lr: o.lr,
        weightDecay: this.opts.weightDecay,
        clip: this.opts.clip,
        extraGrad: o.gExt
          ? { g: Float64Array.from(o.gExt), wMse: o.wMse, wExt: o.wExt }
          : { g: null, wMse: o.wMse, wExt: 0 },
      },
    );
    this.lastGrads = r.grads;
    this.lastAlphaInputs = { wMse: o.wMse, wExt: o.wExt };
    return Promise.resolve({ gradNorm: r.gradNorm, aux: 0, dead: 0 });
  }

  state() {
    return Promise.resolve(new Map());
  }
  restore() {
    return Promise.resolve();
  }
}
