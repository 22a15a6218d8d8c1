// The MSE phase on shuffled activations, as the field trains SAEs: the LM prefix (stopping at the
// hook) fills a buffer of activations from consecutive token batches, the buffer is permuted, and
// training batches are served from it until it is drained, then it is refilled. Neighbouring tokens'
// activations are correlated; drawing a step's tokens from the whole buffer decorrelates them.
// Every SAE given sees the same batches (several dictionary sizes or kinds from one pass of the LM).
// A checkpoint holds where the current fill started and how much of it was served, so a resumed
// run re-collects that fill (the prefix is deterministic) and continues exactly as an unbroken one.
import { Rng } from "../lib/rng.ts";
import type { ModelProto } from "../lm/onnx.ts";
import { feedsFor } from "../lm/signature.ts";
import { createSession, type ExecutionProvider } from "../lm/session.ts";
import { prefix } from "../lm/surgery.ts";
import { type MlpHookPair, transcoderPrefix } from "../lm/transcoder_graphs.ts";
import { assertFinite } from "./checkpoint.ts";
import type { Batches, SaeTrainer } from "./finetune.ts";
import { runLoop, type Tensors } from "./loop.ts";
import type { StepMetrics } from "./step_metrics.ts";
import { createL1Controller, type L1Controller, updateL1 } from "./l1_controller.ts";
import { lrAt, type LrSchedule, validateSchedule } from "./schedule.ts";
import { varianceOf } from "./variance.ts";

export interface MsePhaseOptions {
  model: ModelProto;
  hook: string;
  ep: ExecutionProvider;
  device?: GPUDevice;
  /** The SAEs to train; each gets every batch. */
  saes: SaeTrainer[];
  /** Token batches [seqBatch, seqLen] the buffer is filled from. */
  data: Batches;
  seqBatch: number;
  seqLen: number;
  /** Tokens a training step takes from the buffer. */
  stepTokens: number;
  /** Activations the buffer holds (rounded up to whole token batches). */
  bufferTokens: number;
  /** The SAEs read s·x (activation scaling). */
  activationScale?: number;
  /**
   * The SAEs are transcoders of this MLP: the buffer holds (x_in, y) pairs shuffled together and
   * each step's target is y (`hook` is ignored).
   */
  transcoder?: MlpHookPair;
  steps: number;
  seed: number;
  schedule: Omit<LrSchedule, "totalSteps">;
  /**
   * relu / jumprelu: λ rises linearly from 0 over `warmupSteps`; after it the controller (rate
   * `rate`, default the paper's 0.001) holds L0 at `target` (default: the first batch's L0).
   */
  l1?: {
    lambda: number;
    target?: number;
    controller: boolean;
    rate?: number;
    warmupSteps?: number;
    /** λ may cross zero (train/l1_controller.ts: JumpReLU from scratch). */
    signed?: boolean;
  };
  metricsEvery?: number;
  checkpointEvery?: number;
  checkpointDir?: string;
  onMetrics?: (m: StepMetrics, sae: number) => void | Promise<void>;
  onCheckpoint?: (step: number, dir: string) => void | Promise<void>;
  /** Awaited before a checkpoint is written: what it covers (metric rows) must be durable first. */
  beforeCheckpoint?: () => void | Promise<void>;
  signal?: AbortSignal;
}

interface PhaseState {
  /** Data cursor where the current fill started, fills so far, steps served from this fill. */
  fillCursor: unknown;
  fill: number;
  served: number;
  l1: (L1Controller | null)[];
  /** The data cursor after the current fill (where a following phase continues). */
  dataCursor?: unknown;
}

export async function runMsePhase(opts: MsePhaseOptions) {
  const { saes, seqBatch: B, seqLen: T, stepTokens: N } = opts;
  if (!saes.length) throw new Error("the MSE phase needs at least one SAE");
  const schedule: LrSchedule = { ...opts.schedule, totalSteps: opts.steps };
  validateSchedule(schedule);
  const batchesPerFill = Math.max(1, Math.ceil(Math.max(opts.bufferTokens, N) / (B * T)));
  const capacity = batchesPerFill * B * T, stepsPerFill = Math.floor(capacity / N);
  const d = saes[0].dIn;
  if (saes.some((s) => s.dIn !== d)) {
    throw new Error("the SAEs read activations of different widths");
  }
  const tc = opts.transcoder;
  if (tc && (opts.activationScale ?? 1) !== 1) {
    throw new Error("transcoders train without activation scaling");
  }
  const session = await createSession(
    tc ? transcoderPrefix(opts.model, tc) : prefix(opts.model, opts.hook),
    { ep: opts.ep, device: opts.device },
  );
  const buffer = new Float32Array(capacity * d);
  // Transcoders: the MLP outputs, row for row with the inputs in `buffer`.
  const bufferY = tc ? new Float32Array(capacity * d) : null;
  let order = new Uint32Array(0);
  let state: PhaseState = {
    fillCursor: opts.data.cursor,
    fill: 0,
    served: 0,
    l1: saes.map(() => null),
  };
  let filled = false;
  const fillBuffer = async () => {
    opts.data.seek(state.fillCursor as never);
    for (let b = 0; b < batchesPerFill; b++) {
      const ids = opts.data.next();
      const out = await session.run(feedsFor(session.inputNames, {}, { ids, batch: B, seq: T }));
      const h = out[tc ? tc.input : session.outputNames[0]];
      if (h.dims.at(-1) !== d) {
        throw new Error(
          `the SAEs read ${d}-wide activations but hook "${tc?.input ?? opts.hook}" is ` +
            `${h.dims.at(-1)} wide`,
        );
      }
      buffer.set(h.data as Float32Array, b * B * T * d);
      if (tc) bufferY!.set(out[tc.output].data as Float32Array, b * B * T * d);
    }
    order = new Rng((opts.seed ^ Math.imul(state.fill + 1, 0x9e3779b1)) >>> 0)
      .shuffle(Uint32Array.from({ length: capacity }, (_, i) => i));
    filled = true;
  };
  const x = new Float32Array(N * d);
  const y = tc ? new Float32Array(N * d) : undefined;
  const scale = opts.activationScale ?? 1;
  const warm = opts.l1?.warmupSteps ?? 0;
  let resumedFrom = 0;
  try {
    ({ resumedFrom } = await runLoop<PhaseState>({
      ...opts,
      tokensPerStep: N,
      resume: async (ck) => {
        for (const [i, s] of saes.entries()) await s.restore(prefixed(ck.tensors, `sae${i}.`));
        state = ck.state;
        if (ck.step >= opts.steps && state.dataCursor !== undefined) {
          opts.data.seek(state.dataCursor as never);
        }
      },
      snapshot: async () => {
        const tensors: Tensors = new Map();
        for (const [i, sae] of saes.entries()) {
          for (const [k, v] of await sae.state()) tensors.set(`sae${i}.${k}`, v);
        }
        state.dataCursor = opts.data.cursor;
        return { state, tensors };
      },
      step: async (step, log) => {
        if (!filled) await fillBuffer();
        if (state.served === stepsPerFill) {
          state = { ...state, fillCursor: opts.data.cursor, fill: state.fill + 1, served: 0 };
          await fillBuffer();
        }
        for (let r = 0; r < N; r++) {
          const row = order[state.served * N + r];
          x.set(buffer.subarray(row * d, row * d + d), r * d);
          y?.set(bufferY!.subarray(row * d, row * d + d), r * d);
        }
        if (scale !== 1) { for (let e = 0; e < x.length; e++) x[e] *= scale; }
        state.served++;
        const lr = lrAt(schedule, step);
        const rows = [];
        for (const [i, sae] of saes.entries()) {
          const fwd = await sae.forward(x, N, false, y);
          assertFinite("mse", [fwd.mse], step);
          if (opts.l1?.controller && !state.l1[i] && step === 0) {
            state.l1[i] = createL1Controller(
              opts.l1.lambda,
              opts.l1.target ?? fwd.l0,
              opts.l1.rate,
              { signed: opts.l1.signed },
            );
          }
          // A full penalty from step 0 kills latents before they have learnt anything (SAELens'
          // l1_warm_up_steps); the controller waits for the warm-up to end.
          const ramp = step < warm ? (step + 1) / warm : 1;
          const base = state.l1[i]?.lambda ?? opts.l1?.lambda;
          const l1 = base === undefined ? undefined : base * ramp;
          const bw = await sae.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr, l1 });
          assertFinite("gradient norm", [bw.gradNorm], step);
          if (state.l1[i] && step >= warm) state.l1[i] = updateL1(state.l1[i]!, fwd.l0);
          if (log) {
            rows.push({
              step: step + 1,
              mse: fwd.mse,
              kl: null,
              alpha: null,
              loss: fwd.mse,
              l0: fwd.l0,
              lr,
              gradNorm: bw.gradNorm,
              aux: bw.aux,
              deadLatents: bw.dead,
              l1Lambda: l1 ?? null,
              fvu: fwd.mse / Math.max(varianceOf(y ?? x, d), 1e-30),
              ...(sae.dSae ? { deadFraction: bw.dead / sae.dSae } : {}),
            });
          }
        }
        return rows;
      },
    }));
  } finally {
    await session.release();
  }
  // The data stream is left after the last fill, where a following phase continues.
  return {
    steps: opts.steps,
    resumedFrom,
    fills: state.fill + 1,
    /** Each SAE's λ at the end (the controller's), where one ran: the fine-tune continues from it. */
    l1Lambdas: state.l1.map((c) => c?.lambda ?? null),
  };
}

function prefixed(m: Tensors, p: string): Tensors {
  return new Map([...m].filter(([k]) => k.startsWith(p)).map(([k, v]) => [k.slice(p.length), v]));
}
