// The fine-tune loop (paper Eq. 8–9). Per batch: the LM's tap gives the hook activations x and
// the clean log-probs; the SAE reconstructs x̂; for KL objectives one suffix session returns
// mean KL(p_clean ‖ p_spliced) and ∂KL/∂x̂; α = mse/(kl+1e-8) is detached; the SAE gets
// 0.5·(∂mse/∂x̂ + α·∂KL/∂x̂) plus its own sparsity/aux terms; clip; AdamW at the scheduled LR.
import type { ModelProto } from "../lm/onnx.ts";
import { encodeModel } from "../lm/onnx.ts";
import { createSession, type ExecutionProvider, type LmSession, ort } from "../lm/session.ts";
import { klStepModel, tapModel } from "../lm/splice_grad.ts";
import type { HostAdamW } from "./adapters/host_adamw.ts";
import type { LmLora } from "./adapters/lm_lora.ts";
import type { SkipAdapter } from "./adapters/types.ts";
import {
  assertFinite,
  type Checkpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { createL1Controller, type L1Controller, updateL1 } from "./l1_controller.ts";
import { type Objective, objectiveWeights } from "./objective.ts";
import { lrAt, type LrSchedule, validateSchedule } from "./schedule.ts";

/** What the loop needs of an SAE and its optimizer (implemented on the GPU by sae/trainer.ts). */
export interface SaeTrainer {
  readonly dIn: number;
  /**
   * Reconstructs x [n, d]; keeps what backward needs. `inference`: as at evaluation (BatchTopK
   * applies its running threshold rather than selecting over the batch).
   */
  forward(
    x: Float32Array,
    n: number,
    inference?: boolean,
  ): Promise<{ xhat: Float32Array; mse: number; l0: number }>;
  /**
   * Backward of wMse·mse + wExt·⟨gExt, x̂⟩ (gExt = ∂KL/∂x̂ from the LM) + the SAE's own terms
   * (L1 with `l1` for relu, auxk for topk), then global-norm clipping and one AdamW step at lr.
   */
  backwardAndStep(
    opts: { wMse: number; gExt: Float32Array | null; wExt: number; lr: number; l1?: number },
  ): Promise<{ gradNorm: number; aux: number; dead: number }>;
  /**
   * ∂⟨g, x̂⟩/∂x for the last forward's input (adapters before the hook need it); optional.
   */
  inputGradient?(g: Float32Array): Promise<Float32Array>;
  /** Weights and optimizer state, for checkpoints. */
  state(): Promise<Map<string, { data: Float32Array; shape: number[] }>>;
  restore(state: Map<string, { data: Float32Array; shape: number[] }>): Promise<void>;
}

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
  metricsEvery?: number;
  checkpointEvery?: number;
  checkpointDir?: string;
  onMetrics?: (m: StepMetrics) => void | Promise<void>;
  onCheckpoint?: (step: number, dir: string) => void | Promise<void>;
  /** Called after every step (e.g. to evaluate or sample weights at chosen steps). */
  onStep?: (step: number) => void | Promise<void>;
  /** Train an adapter instead of the SAE, which is then frozen (paper Appendices C–D). */
  adapter?: FinetuneAdapter;
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

export interface StepMetrics {
  step: number;
  tokens: number;
  mse: number;
  kl: number | null;
  alpha: number | null;
  loss: number;
  l0: number;
  lr: number;
  gradNorm: number;
  aux: number;
  deadLatents: number;
  l1Lambda: number | null;
  tokensPerSecond: number;
}

interface LoopState {
  cursor: unknown;
  l1: L1Controller | null;
}

export interface LmStepSessions {
  tap: LmSession;
  kl: LmSession | null;
  release(): Promise<void>;
}

export async function createLmStepSessions(
  model: ModelProto,
  hook: string,
  needKl: boolean,
  ep: ExecutionProvider,
  device?: GPUDevice,
  /** The KL step's graph when it is not the model's own (LoRA on the LM). */
  klModel?: ModelProto,
): Promise<LmStepSessions> {
  const tap = await createSession(encodeModel(tapModel(model, hook)), { ep, device });
  const kl = needKl
    ? await createSession(encodeModel(klModel ?? klStepModel(model, hook)), { ep, device })
    : null;
  return {
    tap,
    kl,
    release: async () => {
      await tap.release();
      await kl?.release();
    },
  };
}

export async function runFinetune(opts: FinetuneOptions, lm?: LmStepSessions) {
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
  const needKl = opts.objective !== "mse";
  const own = !lm;
  const ad = opts.adapter;
  lm ??= await createLmStepSessions(
    opts.model,
    opts.hook,
    needKl,
    opts.ep,
    opts.device,
    ad?.lm?.klStepModel(),
  );
  const pre = ad?.lm?.hasPrefix
    ? {
      fwd: await createSession(encodeModel(ad.lm.prefixModel()), {
        ep: opts.ep,
        device: opts.device,
      }),
      grad: await createSession(encodeModel(ad.lm.prefixGradModel()), {
        ep: opts.ep,
        device: opts.device,
      }),
    }
    : null;
  if (pre && !opts.sae.inputGradient) {
    throw new Error(
      "LoRA on LM layers before the hook needs the gradient to the SAE's input, which this SAE " +
        "trainer does not give (the TopK trainer does)",
    );
  }
  let start = 0;
  let state: LoopState = {
    cursor: opts.data.cursor,
    l1: opts.l1?.controller && opts.l1.target
      ? createL1Controller(opts.l1.lambda, opts.l1.target)
      : null,
  };
  if (opts.checkpointDir) {
    const ck = await loadLatestCheckpoint<LoopState>(opts.checkpointDir);
    if (ck) {
      if (ad) restoreAdapter(ad, ck.tensors);
      else await opts.sae.restore(ck.tensors);
      state = ck.state;
      opts.data.seek(state.cursor as never);
      start = ck.step;
    }
  }
  let t0 = performance.now(), tokensSince = 0;
  let last: StepMetrics | null = null;
  try {
    for (let step = start; step < opts.steps; step++) {
      opts.signal?.throwIfAborted();
      const ids = opts.data.next();
      const idsT = new ort.Tensor("int64", ids, [B, T]);
      const tapOut = await lm.tap.run({ [lm.tap.inputNames[0]]: idsT });
      const hookOut = tapOut[opts.hook];
      const d = hookOut.dims[2];
      if (d !== opts.sae.dIn) {
        throw new Error(
          `the SAE reads ${opts.sae.dIn}-wide activations but hook "${opts.hook}" is ${d} wide`,
        );
      }
      // With LoRA before the hook, the SAE reads the adapted prefix's activations.
      const x = pre
        ? (await pre.fwd.run(loraFeeds(pre.fwd, ad!.lm!, idsT)))[pre.fwd.outputNames[0]]
          .data as Float32Array
        : hookOut.data as Float32Array;
      const fwd0 = await opts.sae.forward(scale === 1 ? x : x.map((v) => v * scale), N);
      const fwd = scale === 1 ? fwd0 : { ...fwd0, xhat: fwd0.xhat.map((v) => v / scale) };
      // No target given: hold the L0 the SAE had before the fine-tune (its first batch's).
      if (!state.l1 && opts.l1?.controller && !opts.l1.target && step === 0) {
        state.l1 = createL1Controller(opts.l1.lambda, fwd.l0);
      }
      // What the LM reads: x̂, or y = x̂ + f(x̂) with a skip adapter.
      const y = ad?.skip ? ad.skip.forward(fwd.xhat, N) : fwd.xhat;
      const mse = ad?.skip ? meanSquaredError(y, x) : fwd0.mse;
      let kl: number | null = null, gKl: Float32Array | null = null;
      // ∂KL/∂ the skipped positions' clean activations (they reach the LM unspliced).
      let gKlClean: Float32Array | null = null;
      let klOut: Record<string, ort.Tensor> = {};
      if (lm.kl) {
        const feeds: Record<string, ort.Tensor> = {
          hook: new ort.Tensor("float32", skip ? keepClean(y, x, B, T, d, skip) : y, [B, T, d]),
          logprobs_clean: tapOut["logprobs_clean"],
          labels: idsT,
          ...ad?.lm?.feeds(lm.kl.inputNames),
        };
        for (const n of lm.kl.inputNames) if (!(n in feeds)) feeds[n] = idsT;
        klOut = await lm.kl.run(feeds);
        kl = (klOut["kl_mean"].data as Float32Array)[0];
        gKl = klOut["grad_kl_hook"].data as Float32Array;
        if (skip) {
          // The graph's mean is over all T positions, the skipped ones contributing 0.
          const rescale = T / (T - skip);
          kl *= rescale;
          gKlClean = gKl.map((g, e) => (Math.floor(e / d) % T < skip ? g * rescale : 0));
          gKl = gKl.map((g, e) => (Math.floor(e / d) % T < skip ? 0 : g * rescale));
          for (const name of Object.keys(klOut)) {
            if (name.startsWith("grad_") && name !== "grad_kl_hook") {
              klOut[name] = new ort.Tensor(
                "float32",
                (klOut[name].data as Float32Array).map((g) => g * rescale),
                klOut[name].dims,
              );
            }
          }
        }
      }
      const w = objectiveWeights(opts.objective, mse, kl ?? 0);
      assertFinite("loss", [w.loss], step);
      const lr = lrAt(schedule, step);
      const l1 = state.l1?.lambda ?? opts.l1?.lambda;
      if (pre && gKl) {
        // Chain rule to the adapters before the hook: back through the frozen SAE (and, at
        // skipped positions, straight to the clean activations), then through the prefix.
        const gx = await opts.sae.inputGradient!(gKl.map((g) => g * w.kl / scale));
        for (let e = 0; e < gx.length; e++) gx[e] = gx[e] * scale + (gKlClean?.[e] ?? 0) * w.kl;
        const feeds = loraFeeds(pre.grad, ad!.lm!, idsT);
        feeds["upstream"] = new ort.Tensor("float32", gx, [B, T, d]);
        const out = await pre.grad.run(feeds);
        for (const name of ad!.lm!.prefixNames) klOut[`grad_${name}`] = out[`grad_${name}`];
      }
      const bw = ad
        ? adapterStep(ad, { y, x, gKl, wMse: w.mse, wKl: w.kl, klOut, lr })
        : await opts.sae.backwardAndStep({
          wMse: w.mse,
          gExt: gKl && scale !== 1 ? gKl.map((g) => g / scale) : gKl,
          wExt: w.kl,
          lr,
          l1,
        });
      assertFinite("gradient norm", [bw.gradNorm], step);
      if (state.l1) state.l1 = updateL1(state.l1, fwd.l0);
      tokensSince += N;
      state.cursor = opts.data.cursor;
      const every = opts.metricsEvery ?? 8;
      if ((step + 1) % every === 0 || step === opts.steps - 1) {
        const now = performance.now();
        last = {
          step: step + 1,
          tokens: (step + 1) * N,
          mse,
          kl,
          alpha: needKl ? w.alpha : null,
          loss: w.loss,
          l0: fwd.l0,
          lr,
          gradNorm: bw.gradNorm,
          aux: bw.aux,
          deadLatents: bw.dead,
          l1Lambda: state.l1?.lambda ?? null,
          tokensPerSecond: tokensSince / ((now - t0) / 1000),
        };
        t0 = now;
        tokensSince = 0;
        await opts.onMetrics?.(last);
      }
      const ckEvery = opts.checkpointEvery ?? 0;
      if (
        opts.checkpointDir && ckEvery && ((step + 1) % ckEvery === 0 || step === opts.steps - 1)
      ) {
        const tensors = ad ? adapterState(ad) : await opts.sae.state();
        for (const [name, t] of tensors) assertFinite(name, t.data, step + 1);
        const ck: Checkpoint<LoopState> = { step: step + 1, state, tensors };
        const dir = await saveCheckpoint(opts.checkpointDir, ck);
        await opts.onCheckpoint?.(step + 1, dir);
      }
      await opts.onStep?.(step + 1);
    }
  } finally {
    if (own) await lm.release();
    await pre?.fwd.release();
    await pre?.grad.release();
  }
  return { steps: opts.steps, resumedFrom: start, last };
}

function meanSquaredError(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let e = 0; e < a.length; e++) s += (a[e] - b[e]) ** 2;
  return s / a.length;
}

/** One optimizer step of an adapter arm; the SAE stays as it is. */
function adapterStep(
  ad: FinetuneAdapter,
  o: {
    y: Float32Array;
    x: Float32Array;
    gKl: Float32Array | null;
    wMse: number;
    wKl: number;
    klOut: Record<string, ort.Tensor>;
    lr: number;
  },
): { gradNorm: number; aux: number; dead: number } {
  let grads: Record<string, Float32Array> = {};
  if (ad.skip) {
    // ∂/∂y of wMse·mean‖y − x‖² + wKl·KL.
    const c = 2 * o.wMse / o.y.length;
    const dy = o.y.map((v, e) => c * (v - o.x[e]) + (o.gKl ? o.wKl * o.gKl[e] : 0));
    grads = ad.skip.backward(dy).grads;
  }
  if (ad.lm) {
    grads = { ...grads, ...ad.lm.gradsFrom(o.klOut, o.wKl) };
    // The prefix adapters' gradients arrive already weighted (the chain rule ran through wKl).
    grads = { ...grads, ...ad.lm.gradsFrom(o.klOut, 1, ad.lm.prefixNames) };
  }
  const gradNorm = ad.optimizer.step(grads, o.lr);
  return { gradNorm, aux: 0, dead: 0 };
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

/** y with the first `skip` positions of each sequence replaced by the clean x. */
function keepClean(
  y: Float32Array,
  x: Float32Array,
  B: number,
  T: number,
  d: number,
  skip: number,
): Float32Array {
  const out = y.slice();
  for (let b = 0; b < B; b++) out.set(x.subarray(b * T * d, (b * T + skip) * d), b * T * d);
  return out;
}

/** Feeds of a session that reads token ids and LoRA adapter tensors. */
function loraFeeds(
  session: LmSession,
  lora: LmLora,
  idsT: ort.Tensor,
): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = lora.feeds(session.inputNames);
  for (const n of session.inputNames) if (!(n in feeds)) feeds[n] = idsT;
  return feeds;
}
