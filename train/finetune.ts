// The fine-tune loop (paper Eq. 8–9). `spliceStep()` is one step in the paper's words; what a run
// adds around it — activation scaling, skipped positions, the L1 controller, adapters trained in
// place of the SAE — is chosen once, before the loop, as the `StepSae` and `SpliceLm` it calls.
// The loop around it keeps the cadence of metrics, checkpoints and resume.
import type { ModelProto } from "../lm/onnx.ts";
import type { SaeTrainer } from "../sae/trainer.ts";
import type { ExecutionProvider } from "../lm/session.ts";
import type { HostAdamW } from "./adapters/host_adamw.ts";
import type { LmLora } from "./adapters/lm_lora.ts";
import type { SkipAdapter } from "./adapters/types.ts";
import { assertFinite } from "./checkpoint.ts";
import { runLoop } from "./loop.ts";
import type { StepMetrics } from "./step_metrics.ts";
import { createL1Controller, type L1Controller, updateL1 } from "./l1_controller.ts";
import { needsKl, type Objective, objectiveWeights } from "./objective.ts";
import { lrAt, type LrSchedule, validateSchedule } from "./schedule.ts";
import { varianceOf } from "./variance.ts";
import { createTranscoderSessions, transcoderSide } from "./transcoder.ts";
import type { MlpHookPair } from "../lm/transcoder_graphs.ts";
import {
  type Act,
  createLmStepSessions,
  hostAct,
  type KlResult,
  type LmStepSessions,
  SpliceLm,
} from "./splice_lm.ts";

export { createLmStepSessions, type LmStepSessions };
export type { SaeTrainer } from "../sae/trainer.ts";
export type { StepMetrics } from "./step_metrics.ts";

export interface Batches {
  next(): BigInt64Array;
  readonly cursor: unknown;
  seek(c: never): void;
}

export interface FinetuneOptions {
  objective: Objective;
  model: ModelProto;
  hook: string;
  ep: ExecutionProvider;
  device?: GPUDevice;
  sae: SaeTrainer;
  data: Batches;
  batchSize: number;
  seqLen: number;
  steps: number;
  schedule: Omit<LrSchedule, "totalSteps">;
  /** relu / jumprelu: the App. E controller holds L0 at target (default: the L0 at step 0). */
  l1?: { lambda: number; target?: number; controller: boolean };
  /**
   * The first positions of each sequence (BOS, attention sinks) keep their clean activations in
   * the spliced run and are left out of the KL mean, as in CE-eval.
   */
  skipFirstPositions?: number;
  /**
   * The SAE reads s·x (activation scaling, E‖s·x‖² = d_in): its x̂ is divided by s before the LM
   * and the KL gradient reaching it is divided by s. MSE is measured in the scaled space.
   */
  activationScale?: number;
  /** Sequences per KL session run; the micro-batches' gradients add up to the batch's. */
  microBatch?: number;
  metricsEvery?: number;
  checkpointEvery?: number;
  checkpointDir?: string;
  onMetrics?: (m: StepMetrics) => void | Promise<void>;
  /** Awaited before a checkpoint is written (e.g. to make the metrics it covers durable). */
  beforeCheckpoint?: () => void | Promise<void>;
  onCheckpoint?: (step: number, dir: string) => void | Promise<void>;
  /** Called after every step (e.g. to evaluate or sample weights at chosen steps). */
  onStep?: (step: number) => void | Promise<void>;
  /** Train an adapter instead of the SAE, which is then frozen (paper Appendices C–D). */
  adapter?: FinetuneAdapter;
  /**
   * The SAE is a transcoder of this MLP (lm/transcoder_graphs.ts): it reads the MLP's input,
   * predicts its output, and the LM runs on with the MLP's output replaced; `hook` is ignored
   * (the splice is at the pair's resid_post).
   */
  transcoder?: MlpHookPair;
  signal?: AbortSignal;
}

/** What an adapter arm trains in place of the SAE. */
export interface FinetuneAdapter {
  /** Applied to x̂ before the LM: y = x̂ + f(x̂); the objective's MSE is ‖y − x‖². */
  skip?: SkipAdapter;
  /** LoRA on the LM after the hook: extra KL-step inputs, gradients out of it. */
  lm?: LmLora;
  optimizer: HostAdamW;
}

/** What a step trains: the SAE, or an adapter around the frozen SAE. */
export interface StepSae {
  /**
   * y, what the LM reads in place of x (x̂, or x̂ + f(x̂)), mse = mean (y − x)², and fvu = mse over
   * the batch's variance of x about its mean.
   */
  forward(x: Act): Promise<{ y: Act; mse: number; fvu: number; l0: number }>;
  /** Backward of wMse·mse + wKl·KL, clip, one optimizer step. */
  backwardAndStep(
    o: { wMse: number; wKl: number; kl: KlResult | null; lr: number },
  ): Promise<{ gradNorm: number; aux: number; dead: number }>;
  state(): Promise<Map<string, { data: Float32Array; shape: number[] }>>;
  restore(state: Map<string, { data: Float32Array; shape: number[] }>): Promise<void>;
}

export interface StepParts {
  objective: Objective;
  lm: SpliceLm;
  sae: StepSae;
}

/** One step of the paper's fine-tune (Eq. 8–9); returns what it measured. */
export async function spliceStep(p: StepParts, ids: BigInt64Array, lr: number, step: number) {
  const { clean, x } = await p.lm.activations(ids); // the LM's residual stream at the hook
  const recon = await p.sae.forward(x); // x̂ = SAE(x); mse = ‖x − x̂‖² / n
  const kl = needsKl(p.objective) ? await p.lm.kl(clean, recon.y) : null; // KL(p_clean ‖ p_x̂), ∂KL/∂x̂
  const w = objectiveWeights(p.objective, recon.mse, kl?.kl ?? 0); // α = mse / (kl + 1e-8), detached
  assertFinite("loss", [w.loss], step);
  const bw = await p.sae.backwardAndStep({ wMse: w.mse, wKl: w.kl, kl, lr }); // 0.5·(∂mse + α·∂KL); clip; AdamW
  assertFinite("gradient norm", [bw.gradNorm], step);
  return { ...bw, mse: recon.mse, fvu: recon.fvu, l0: recon.l0, kl: kl?.kl ?? null, w };
}

interface LoopState {
  cursor: unknown;
  l1: L1Controller | null;
}

export async function runFinetune(opts: FinetuneOptions, sessions?: LmStepSessions) {
  const B = opts.batchSize, T = opts.seqLen, N = B * T;
  const skip = opts.skipFirstPositions ?? 0;
  const scale = opts.activationScale ?? 1;
  if (!(scale > 0 && Number.isFinite(scale))) {
    throw new RangeError(`activationScale must be a positive number, got ${scale}`);
  }
  if (!(Number.isInteger(skip) && skip >= 0 && skip < T)) {
    throw new RangeError(`skipFirstPositions must be an integer in [0, seq_len=${T}), got ${skip}`);
  }
  const schedule: LrSchedule = { ...opts.schedule, totalSteps: opts.steps };
  validateSchedule(schedule);
  const ad = opts.adapter;
  const tc = opts.transcoder;
  if (tc && (ad || scale !== 1)) {
    throw new Error("a transcoder fine-tune takes no adapters and no activation scaling");
  }
  const hook = tc?.post ?? opts.hook;
  // On the WebGPU EP the plain SAE step keeps x, x̂ and ∂KL/∂x̂ on the GPU; scaling, adapters and
  // micro-batches work on host arrays.
  const zeroCopy = opts.ep === "webgpu" && !!opts.device && !ad && !tc && scale === 1 &&
    !!opts.sae.forwardGpu && (opts.microBatch ?? B) === B;
  const own = !sessions;
  sessions ??= tc
    ? await createTranscoderSessions(opts.model, tc, needsKl(opts.objective), opts.ep, opts.device)
    : await createLmStepSessions(
      opts.model,
      hook,
      needsKl(opts.objective),
      opts.ep,
      opts.device,
      ad?.lm?.klStepModel(),
      zeroCopy,
    );
  let lm: SpliceLm | null = null;
  try {
    lm = await SpliceLm.create(sessions, {
      hook,
      width: opts.sae.dIn,
      batch: B,
      seq: T,
      skipFirstPositions: skip,
      microBatch: opts.microBatch,
      lora: ad?.lm,
      ep: opts.ep,
      device: opts.device,
    });
    if (lm.adaptsPrefix && !opts.sae.inputGradient) {
      throw new Error(
        "LoRA on LM layers before the hook needs the gradient to the SAE's input, which this SAE " +
          "trainer does not give (the TopK trainer does)",
      );
    }
    let state: LoopState = {
      cursor: opts.data.cursor,
      l1: opts.l1?.controller && opts.l1.target
        ? createL1Controller(opts.l1.lambda, opts.l1.target)
        : null,
    };
    const l1 = () => state.l1?.lambda ?? opts.l1?.lambda;
    const sae: StepSae = ad
      ? adapterSide(opts.sae, ad, lm, scale)
      : tc
      ? transcoderSide(opts.sae, lm, tc, l1)
      : saeSide(opts.sae, scale, l1);
    const parts: StepParts = { objective: opts.objective, lm, sae };
    let last: StepMetrics | null = null;
    const { resumedFrom } = await runLoop<LoopState>({
      ...opts,
      tokensPerStep: N,
      resume: async (ck) => {
        await sae.restore(ck.tensors);
        state = ck.state;
        opts.data.seek(state.cursor as never);
      },
      snapshot: async () => ({ state, tensors: await sae.state() }),
      step: async (step) => {
        const lr = lrAt(schedule, step);
        const r = await spliceStep(parts, opts.data.next(), lr, step);
        // No target given: hold the L0 the SAE had before the fine-tune (its first batch's).
        if (!state.l1 && opts.l1?.controller && !opts.l1.target && step === 0) {
          state.l1 = updateL1(createL1Controller(opts.l1.lambda, r.l0), r.l0);
        } else if (state.l1) state.l1 = updateL1(state.l1, r.l0);
        state.cursor = opts.data.cursor;
        return [{
          step: step + 1,
          mse: r.mse,
          fvu: r.fvu,
          kl: r.kl,
          alpha: needsKl(opts.objective) ? r.w.alpha : null,
          loss: r.w.loss,
          l0: r.l0,
          lr,
          gradNorm: r.gradNorm,
          aux: r.aux,
          deadLatents: r.dead,
          l1Lambda: state.l1?.lambda ?? null,
          ...(opts.sae.dSae && !ad ? { deadFraction: r.dead / opts.sae.dSae } : {}),
        }];
      },
      onMetrics: async (m) => {
        last = m;
        await opts.onMetrics?.(m);
      },
    });
    return { steps: opts.steps, resumedFrom, last: last as StepMetrics | null };
  } finally {
    await lm?.release();
    if (own) await sessions.release();
  }
}

/**
 * The SAE trains. With activation scaling it reads s·x, its x̂ is divided by s before the LM, and
 * the KL gradient reaching it is divided by s; `l1` is the controller's λ at each step.
 */
function saeSide(
  t: SaeTrainer,
  scale: number,
  l1: () => number | undefined,
): StepSae {
  return {
    forward: async (x) => {
      if (x instanceof GPUBuffer) {
        if (scale !== 1 || !t.forwardGpu) {
          throw new Error("GPU-resident activations need an unscaled SAE trainer with forwardGpu");
        }
        const f = await t.forwardGpu(x, x.size / 4 / t.dIn);
        return { y: f.xhat, mse: f.mse, fvu: f.fvu, l0: f.l0 };
      }
      const xs = scale === 1 ? x : x.map((v) => v * scale);
      const f = await t.forward(xs, x.length / t.dIn);
      const y = scale === 1 ? f.xhat : f.xhat.map((v) => v / scale);
      return { y, mse: f.mse, fvu: f.mse / Math.max(varianceOf(xs, t.dIn), 1e-30), l0: f.l0 };
    },
    backwardAndStep: ({ wMse, wKl, kl, lr }) =>
      t.backwardAndStep({
        wMse,
        gExt: kl && scale !== 1 ? host(kl.grad).map((g) => g / scale) : kl?.grad ?? null,
        wExt: wKl,
        lr,
        l1: l1(),
      }),
    state: () => t.state(),
    restore: (s) => t.restore(s),
  };
}

/** Host activations; adapters and scaling work on them (their sessions are not zero-copy). */
const host = (a: Act) => hostAct(a, "a host-side adapter or scaling");

/**
 * An adapter trains around the frozen SAE: a skip adapter on x̂ (y = x̂ + f(x̂)) and/or LoRA on the
 * LM (after the hook: gradients from the KL graph; before it: back through the SAE's input
 * gradient and the adapted prefix's gradient graph).
 */
function adapterSide(t: SaeTrainer, ad: FinetuneAdapter, lm: SpliceLm, scale: number): StepSae {
  let last: { x: Float32Array; y: Float32Array } | null = null;
  return {
    forward: async (a) => {
      const x = host(a);
      const f = await t.forward(scale === 1 ? x : x.map((v) => v * scale), x.length / t.dIn);
      const xhat = scale === 1 ? f.xhat : f.xhat.map((v) => v / scale);
      const y = ad.skip ? ad.skip.forward(xhat, x.length / t.dIn) : xhat;
      last = { x, y };
      const mse = ad.skip ? meanSquaredError(y, x) : f.mse;
      return {
        y,
        mse,
        fvu: mse / Math.max(varianceOf(x, t.dIn) * (ad.skip ? 1 : scale * scale), 1e-30),
        l0: f.l0,
      };
    },
    backwardAndStep: async ({ wMse, wKl, kl, lr }) => {
      const { x, y } = last!;
      const gKl = kl ? host(kl.grad) : null;
      let grads: Record<string, Float32Array> = {};
      if (ad.skip) {
        // ∂/∂y of wMse·mean‖y − x‖² + wKl·KL.
        const c = 2 * wMse / y.length;
        const dy = y.map((v, e) => c * (v - x[e]) + (gKl ? wKl * gKl[e] : 0));
        grads = ad.skip.backward(dy).grads;
      }
      if (ad.lm && kl) {
        for (const name of ad.lm.suffixNames) {
          const g = kl.adapters[name];
          if (!g) throw new Error(`the KL step has no gradient output for LoRA input ${name}`);
          grads[name] = g.map((v) => v * wKl);
        }
        if (lm.adaptsPrefix) {
          // Chain rule to the adapters before the hook: back through the frozen SAE (and, at
          // skipped positions, straight to the clean activations), then through the prefix.
          const gx = await t.inputGradient!(gKl!.map((g) => g * wKl / scale));
          for (let e = 0; e < gx.length; e++) {
            gx[e] = gx[e] * scale + (kl.gradClean?.[e] ?? 0) * wKl;
          }
          grads = { ...grads, ...await lm.prefixGrads(gx) };
        }
      }
      const gradNorm = ad.optimizer.step(grads, lr);
      return { gradNorm, aux: 0, dead: 0 };
    },
    state: () => Promise.resolve(adapterState(ad)),
    restore: (s) => Promise.resolve(restoreAdapter(ad, s)),
  };
}

function meanSquaredError(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let e = 0; e < a.length; e++) s += (a[e] - b[e]) ** 2;
  return s / a.length;
}

function adapterState(ad: FinetuneAdapter): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  const opt = ad.optimizer;
  for (const [k, v] of Object.entries(opt.params)) {
    out.set(`adapter.${k}`, { data: v.slice(), shape: [v.length] });
    out.set(`adapter.m.${k}`, { data: Float32Array.from(opt.m[k]), shape: [v.length] });
    out.set(`adapter.v.${k}`, { data: Float32Array.from(opt.v[k]), shape: [v.length] });
  }
  out.set("adapter.t", { data: Float32Array.of(opt.t), shape: [1] });
  return out;
}

function restoreAdapter(
  ad: FinetuneAdapter,
  state: Map<string, { data: Float32Array; shape: number[] }>,
): void {
  const opt = ad.optimizer;
  for (const [k, v] of Object.entries(opt.params)) {
    const get = (key: string) => {
      const t = state.get(key);
      if (!t || t.data.length !== v.length) throw new Error(`checkpoint: ${key} is missing`);
      return t.data;
    };
    v.set(get(`adapter.${k}`));
    opt.m[k].set(get(`adapter.m.${k}`));
    opt.v[k].set(get(`adapter.v.${k}`));
  }
  opt.t = state.get("adapter.t")?.data[0] ?? 0;
}
