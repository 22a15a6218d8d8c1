// A float64 TopK SaeTrainer over test/util/reference_finetune.ts: lets the fine-tune loop be tested
// against the closed-form reference, independently of the GPU engine.
import type { OwnedTrainer, TrainerFactory } from "../../sae/trainer.ts";
import type { Sae } from "../../sae/types.ts";
import { type Adam64, referenceStep, type Sae64, topkForward } from "./reference_finetune.ts";

export class ReferenceTrainer implements OwnedTrainer {
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
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
      out.set(name, { data: Float32Array.from(this.sae[name]), shape: [this.sae[name].length] });
      if (this.adam.m[name]) {
        out.set(`m.${name}`, {
          data: Float32Array.from(this.adam.m[name]),
          shape: [this.sae[name].length],
        });
        out.set(`v.${name}`, {
          data: Float32Array.from(this.adam.v[name]),
          shape: [this.sae[name].length],
        });
      }
    }
    out.set("adam.t", { data: Float32Array.of(this.adam.t), shape: [1] });
    return Promise.resolve(out);
  }

  restore(state: Map<string, { data: Float32Array; shape: number[] }>) {
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
      this.sae[name] = Float64Array.from(state.get(name)!.data);
      if (state.has(`m.${name}`)) {
        this.adam.m[name] = Float64Array.from(state.get(`m.${name}`)!.data);
        this.adam.v[name] = Float64Array.from(state.get(`v.${name}`)!.data);
      }
    }
    this.adam.t = state.get("adam.t")!.data[0];
    return Promise.resolve();
  }

  toSae(): Promise<Sae> {
    const s = this.sae;
    return Promise.resolve({
      cfg: { kind: "topk", dIn: s.dIn, dSae: s.dSae, k: s.k },
      weights: {
        W_enc: Float32Array.from(s.W_enc),
        b_enc: Float32Array.from(s.b_enc),
        W_dec: Float32Array.from(s.W_dec),
        b_dec: Float32Array.from(s.b_dec),
      },
    });
  }

  release(): void {}
}

/** A TrainerFactory over the float64 reference (TopK only), for service tests. */
export const referenceTrainerFactory: TrainerFactory = (_gpu, sae, opts) => {
  if (sae.cfg.kind !== "topk") throw new Error("the reference trainer is TopK only");
  const w = sae.weights;
  return Promise.resolve(
    new ReferenceTrainer({
      dIn: sae.cfg.dIn,
      dSae: sae.cfg.dSae,
      k: sae.cfg.k!,
      W_enc: Float64Array.from(w.W_enc),
      b_enc: Float64Array.from(w.b_enc),
      W_dec: Float64Array.from(w.W_dec),
      b_dec: Float64Array.from(w.b_dec),
    }, { weightDecay: opts.weightDecay, clip: opts.gradClip }),
  );
};
