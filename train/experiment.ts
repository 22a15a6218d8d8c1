// One arm of an experiment: from the shared starting SAE, on the experiment's data order, train what
// the arm trains, sample its CE gap on held-out text along the way and the stability of the SAE's
// weights (App. H), and evaluate it at the end. jobs/experiment_job.ts runs the arms and stores the
// table and plots.
import type { GpuContext } from "../gpu/device.ts";
import { ceEval, type CeEvalResult, createEvalSessions } from "../eval/ce_eval.ts";
import type { ModelProto } from "../lm/onnx.ts";
import type { MlpHookPair } from "../lm/transcoder_graphs.ts";
import { prefix } from "../lm/surgery.ts";
import type { ExecutionProvider } from "../lm/session.ts";
import type { GpuSaeTrainer } from "../sae/gpu_trainer.ts";
import { createSaeTrainer } from "../sae/trainers.ts";
import type { Sae } from "../sae/types.ts";
import { HostAdamW } from "./adapters/host_adamw.ts";
import { LinearSkip } from "./adapters/linear_skip.ts";
import { LmLora } from "./adapters/lm_lora.ts";
import { MlpSkip } from "./adapters/mlp_skip.ts";
import { SaeLoraTrainer } from "./adapters/sae_lora.ts";
import type { SkipAdapter } from "./adapters/types.ts";
import type { ArmSpec, ExperimentConfig } from "./experiment_config.ts";
import {
  type Batches,
  type FinetuneAdapter,
  runFinetune,
  type SaeTrainer,
  type StepMetrics,
} from "./finetune.ts";
import type { Objective } from "./objective.ts";

export interface ArmContext {
  cfg: ExperimentConfig;
  gpu: GpuContext;
  model: ModelProto;
  hook: string;
  ep: ExecutionProvider;
  sae: Sae;
  /** Training batches in the experiment's fixed order. */
  trainBatches(batchSize: number): Batches;
  /** The same held-out batches every call. */
  evalBatches(sequences: number, batchSize: number): BigInt64Array[];
  contextLength?: number;
  signal?: AbortSignal;
  onMetrics?(m: StepMetrics): void | Promise<void>;
  /** The SAE is a transcoder of this MLP: arms splice its output in place of the MLP's. */
  transcoder?: MlpHookPair;
}

/** Arms that train a transcoder itself (adapters around one are not built). */
const TRANSCODER_ARMS: ReadonlySet<string> = new Set(["mse", "kl_mse", "kl_only", "e2e"]);

export interface ArmSummary {
  ceClean: number;
  ceSpliced: number;
  ceGap: number;
  ceRecovered: number;
  kl: number;
  fvu: number;
  l0: number;
}

export interface ArmResult {
  name: string;
  type: ArmSpec["type"];
  steps: number;
  tokens: number;
  final: ArmSummary;
  /** [tokens, CE gap] on the curve's held-out sequences, step 0 first. */
  curve: [number, number][];
  /** [tokens, 25th, 50th, 75th percentile] of cos(column, its start); SAE-training arms only. */
  stability: {
    encoder: [number, number, number, number][];
    decoder: [number, number, number, number][];
  };
  seconds: number;
  tokensPerSecond: number;
}

const SAE_ARMS: ReadonlySet<string> = new Set(["mse", "kl_mse", "kl_only", "e2e", "sae_lora"]);

export function summarize(r: CeEvalResult): ArmSummary {
  return {
    ceClean: r.ceClean,
    ceSpliced: r.ceSpliced,
    ceGap: r.ceGap,
    ceRecovered: r.ceRecovered,
    kl: r.kl,
    fvu: r.recon.fvu,
    l0: r.recon.l0 ?? NaN,
  };
}

/** 25th, 50th and 75th percentiles of per-latent cosines between `now` and `start`. */
export function stabilityPercentiles(
  start: Float32Array,
  now: Float32Array,
  d: number,
  n: number,
  layout: "rows" | "columns",
): [number, number, number] {
  const cos = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < d; i++) {
      const e = layout === "rows" ? j * d + i : i * n + j;
      ab += start[e] * now[e];
      aa += start[e] ** 2;
      bb += now[e] ** 2;
    }
    cos[j] = ab / Math.max(Math.sqrt(aa * bb), 1e-30);
  }
  cos.sort();
  const q = (p: number) => cos[Math.min(n - 1, Math.floor(p * (n - 1)))];
  return [q(0.25), q(0.5), q(0.75)];
}

export async function runArm(arm: ArmSpec & { name: string }, ctx: ArmContext): Promise<ArmResult> {
  const { cfg, gpu, model, hook, ep, transcoder } = ctx;
  if (transcoder && !TRANSCODER_ARMS.has(arm.type)) {
    throw new Error(
      `arm "${arm.name}": a transcoder trains in arms of type ${
        [...TRANSCODER_ARMS].join(", ")
      }, not ${arm.type}`,
    );
  }
  const device = ep === "webgpu" ? gpu.device : undefined;
  const batch = arm.batch_size ?? cfg.batch_size, T = cfg.seq_len;
  const steps = Math.max(1, Math.floor((arm.tokens ?? cfg.tokens) / (batch * T)));
  const sae: Sae = structuredClone(ctx.sae);
  if (arm.k !== undefined) {
    if (sae.cfg.kind !== "topk") throw new Error(`arm "${arm.name}": k applies to TopK SAEs only`);
    sae.cfg.k = arm.k;
  }
  const d = sae.cfg.dIn, n = sae.cfg.dSae;
  const opt = { weightDecay: cfg.weight_decay, clip: cfg.grad_clip };
  const inner: GpuSaeTrainer = await createSaeTrainer(gpu, sae, {
    weightDecay: cfg.weight_decay,
    gradClip: cfg.grad_clip,
    decoderConstraint: false,
  });
  const lora = arm.type === "sae_lora"
    ? new SaeLoraTrainer(inner, sae, {
      rank: arm.rank,
      alpha: arm.alpha,
      ...opt,
      gradClip: opt.clip,
      dropout: arm.dropout,
      seed: cfg.seed,
    })
    : null;
  const trainer: SaeTrainer & { toSae(): Promise<Sae> } = lora ?? inner;
  let skip: SkipAdapter | null = null;
  let lmLora: LmLora | null = null;
  const adapterFor = (): FinetuneAdapter | undefined => {
    if (arm.type === "linear_skip" || arm.type === "two_stage") {
      skip = new LinearSkip(d, arm.rank, cfg.seed);
    } else if (arm.type === "mlp_skip") skip = new MlpSkip(d, arm.hidden, cfg.seed);
    else if (arm.type === "lm_lora") {
      lmLora = new LmLora(model, hook, {
        rank: arm.rank,
        alpha: arm.alpha,
        layers: arm.layers,
        saeKind: sae.cfg.kind,
        seed: cfg.seed,
      });
    } else return undefined;
    const params = skip?.params ?? lmLora!.params;
    return {
      skip: skip ?? undefined,
      lm: lmLora ?? undefined,
      optimizer: new HostAdamW(params, opt),
    };
  };

  const curveBatches = ctx.evalBatches(cfg.curve_sequences, batch);
  const evaluate = async (batches: BigInt64Array[]) => {
    const baked = lmLora ? (lmLora as LmLora).bakedModel() : model;
    const sessions = await createEvalSessions(
      model,
      hook,
      ep,
      device,
      baked,
      lmLora && (lmLora as LmLora).hasPrefix ? prefix(baked, hook) : undefined,
      transcoder,
    );
    try {
      return await ceEval({
        model,
        hook,
        ep,
        device,
        batches,
        batchSize: batch,
        seqLen: T,
        contextLength: ctx.contextLength,
        sae: {
          dIn: d,
          reconstruct: async (x, nTok, target) => {
            const f = await trainer.forward(x, nTok, true, target);
            const xhat = skip ? (skip as SkipAdapter).forward(f.xhat, nTok) : f.xhat;
            return { xhat, l0: f.l0 };
          },
        },
        signal: ctx.signal,
        transcoder,
      }, sessions);
    } finally {
      await sessions.release();
    }
  };

  const result: ArmResult = {
    name: arm.name,
    type: arm.type,
    steps,
    tokens: steps * batch * T,
    final: null as unknown as ArmSummary,
    curve: [],
    stability: { encoder: [], decoder: [] },
    seconds: 0,
    tokensPerSecond: 0,
  };
  const t0 = performance.now();
  try {
    const stages: { objective: Objective; steps: number; adapter: boolean; from: number }[] =
      arm.type === "two_stage"
        ? [
          {
            objective: "kl_mse",
            steps: Math.max(1, Math.floor(steps / 2)),
            adapter: false,
            from: 0,
          },
          {
            objective: "kl_mse",
            steps: steps - Math.max(1, Math.floor(steps / 2)),
            adapter: true,
            from: Math.max(1, Math.floor(steps / 2)),
          },
        ]
        : [{
          objective: SAE_ARMS.has(arm.type) && arm.type !== "sae_lora"
            ? arm.type as Objective
            : "kl_mse",
          steps,
          adapter: !SAE_ARMS.has(arm.type),
          from: 0,
        }];
    const curveAt = new Set(
      Array.from(
        { length: cfg.curve_points },
        (_, i) => Math.round((steps * (i + 1)) / cfg.curve_points),
      ),
    );
    if (cfg.curve_points > 0) result.curve.push([0, (await evaluate(curveBatches)).ceGap]);
    const start = { enc: sae.weights.W_enc.slice(), dec: sae.weights.W_dec.slice() };
    const sample = async (step: number) => {
      const w = (await trainer.toSae()).weights;
      const e = stabilityPercentiles(start.enc, w.W_enc, d, n, "columns");
      const dd = stabilityPercentiles(start.dec, w.W_dec, d, n, "rows");
      result.stability.encoder.push([step * batch * T, ...e]);
      result.stability.decoder.push([step * batch * T, ...dd]);
    };
    const data = ctx.trainBatches(batch);
    for (const st of stages) {
      if (st.steps < 1) continue;
      const trainsSae = !st.adapter && (SAE_ARMS.has(arm.type) || arm.type === "two_stage");
      if (trainsSae && st.from === 0) await sample(0);
      await runFinetune({
        objective: st.objective,
        model,
        hook,
        ep,
        device,
        sae: trainer,
        data,
        batchSize: batch,
        seqLen: T,
        steps: st.steps,
        schedule: {
          lr: arm.lr ?? (st.adapter || lora ? cfg.adapter_lr : cfg.lr),
          decayFraction: 1,
        },
        adapter: st.adapter ? adapterFor() : undefined,
        transcoder,
        // ReLU / JumpReLU / gated: the App. E controller holds L0 where it started.
        l1: sae.cfg.kind === "relu" || sae.cfg.kind === "jumprelu" || sae.cfg.kind === "gated"
          ? { lambda: sae.cfg.l1Coefficient ?? 5, controller: true }
          : undefined,
        metricsEvery: 8,
        signal: ctx.signal,
        onMetrics: (m) =>
          ctx.onMetrics?.({ ...m, step: st.from + m.step, tokens: (st.from + m.step) * batch * T }),
        onStep: async (s) => {
          const step = st.from + s;
          if (trainsSae && (step % cfg.stability_every === 0 || s === st.steps)) await sample(step);
          if (curveAt.has(step)) {
            result.curve.push([step * batch * T, (await evaluate(curveBatches)).ceGap]);
          }
        },
      });
    }
    result.final = summarize(await evaluate(ctx.evalBatches(cfg.eval_sequences, batch)));
    result.seconds = (performance.now() - t0) / 1000;
    result.tokensPerSecond = result.tokens / result.seconds;
    return result;
  } finally {
    if (lora) lora.release();
    else inner.release();
  }
}
