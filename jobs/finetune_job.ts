// The "finetune" job: resolves the model, SAE and data, runs train/finetune.ts with checkpoints
// under the job's directory (so a restart resumes), streams metrics, writes the SAE in SAELens
// layout, registers it, and evaluates it on held-out text.
import { INFERENCE_ONLY } from "../sae/gpu_trainer.ts";
import { eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import type { MetricsWriter } from "../db/metrics_writer.ts";
import { models, saes } from "../db/schema.ts";
import type { GpuContext } from "../gpu/device.ts";
import { listHookPoints, resolveHook } from "../lm/hooks.ts";
import { type MlpHookPair, resolveTranscoderHooks } from "../lm/transcoder_graphs.ts";
import type { ModelProto } from "../lm/onnx.ts";
import { loadLm } from "../lm/load.ts";
import { chooseEp, runtimeInfo, runtimeStatus } from "../lm/session.ts";
import { initSae } from "../sae/init.ts";
import { saveSae } from "../sae/io.ts";
import type { Sae } from "../sae/types.ts";
import { FinetuneConfig, SaeInit, stepsOf } from "../train/config.ts";
import { saeHealth } from "../train/health.ts";
import {
  centreOf,
  matryoshkaWidthsFor,
  needsScale,
  normalizationFor,
  pretrainLrFor,
  scratchSparsity,
} from "../train/scratch_defaults.ts";
import { runFinetune, type StepMetrics } from "../train/finetune.ts";
import { runMsePhase } from "../train/mse_phase.ts";
import { microBatchFor, stepShapeOf } from "../train/memory.ts";
import { estimateActivationScale } from "../train/activation_scale.ts";
import { NonFiniteError } from "../train/checkpoint.ts";
import { foldScaling } from "../sae/scaling.ts";
import { ceEval } from "../eval/ce_eval.ts";
import { evalPrefixes, type PrefixEvalRow } from "../eval/prefix_eval.ts";
import { loadDataset } from "./datasets.ts";
import { guardTrainer } from "./gpu_guard.ts";
import { loadCheckedSae } from "./sae_checks.ts";
import { hasCheckpoint, withoutCheckpoint } from "./nonfinite.ts";
import type { JobContext, JobHandler } from "./runner.ts";
import type { TrainerFactory } from "../sae/trainer.ts";
import { chooseSaeDevice } from "../sae/sae_device.ts";

export type { OwnedTrainer, TrainerFactory } from "../sae/trainer.ts";

export const DEFAULT_HOOK: Record<string, string> = { "tiny-neox": "/blocks.1/Add_2_output_0" };

export interface FinetuneDeps {
  database: Database;
  gpu: GpuContext;
  dataDir: string;
  metrics: MetricsWriter;
  createTrainer: TrainerFactory;
}

export class JobInputError extends Error {
  override name = "JobInputError";
}

/** f()'s value; an error it throws is the request's (a JobInputError with the same message). */
export function asInputError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new JobInputError((e as Error).message);
  }
}

export async function loadModelById(database: Database, id: string): Promise<ModelProto> {
  return (await loadModelRow(database, id)).model;
}

export async function loadModelRow(database: Database, id: string) {
  const [row] = await database.db.select().from(models).where(eq(models.id, id));
  if (!row) throw new JobInputError(`model "${id}" is not registered`);
  const info = (row.info ?? {}) as { contextLength?: number };
  // The registered path was confined when the model was registered; loadLm resolves its external
  // data beside it and makes the signature canonical (mask, positions, empty past).
  const { model } = await loadLm(row.path, { label: `model "${id}"` });
  return { model, contextLength: info.contextLength };
}

export async function loadSaeById(database: Database, id: string): Promise<Sae> {
  const [row] = await database.db.select().from(saes).where(eq(saes.id, id));
  if (!row) throw new JobInputError(`SAE "${id}" is not registered`);
  return await loadCheckedSae(row.path, id);
}

export { chooseEp };

export function finetuneHandler(deps: FinetuneDeps): JobHandler {
  return async (ctx: JobContext) => {
    const cfg = FinetuneConfig.parse(ctx.job.config);
    const { model, contextLength } = await loadModelRow(deps.database, cfg.model);
    const start = cfg.sae ? await loadSaeById(deps.database, cfg.sae) : null;
    const pair = transcoderPairOf(model, cfg, start);
    const spec = pair?.input ?? cfg.hook ?? start?.cfg.metadata?.hookName ??
      DEFAULT_HOOK[cfg.model];
    if (!spec) {
      throw new JobInputError(`no hook given and model "${cfg.model}" has no default; pass "hook"`);
    }
    const hook = asInputError(() => resolveHook(model, spec));
    // A transcoder's input is as wide as the stream it reads from (its block's output).
    const width = Number(
      listHookPoints(model).find((h) => h.name === (pair?.post ?? hook))?.dims[2],
    );
    if (!Number.isInteger(width)) {
      throw new JobInputError(`hook "${hook}" has no fixed width in "${cfg.model}"`);
    }
    const init = cfg.init ?? SaeInit.parse({ kind: "topk", d_sae: 2048, k: 16 });
    const sae: Sae = start ?? initSae({
      kind: init.kind,
      dIn: width,
      dSae: init.d_sae,
      k: init.k,
      l1Coefficient: init.l1_coefficient,
      ...(init.kind === "matryoshka_batchtopk"
        ? { matryoshkaWidths: asInputError(() => matryoshkaWidthsFor(init)) }
        : {}),
      metadata: {
        model: cfg.model,
        hookName: hook,
        contextSize: cfg.seq_len,
        ...(pair ? { hookNameOut: pair.output } : {}),
      },
      ...(pair ? { transcoder: { skip: init.transcoder === "skip_transcoder" } } : {}),
    }, { seed: cfg.seed });
    if (pair && !start) {
      // As sparsify's transcoders: the decoder starts at zero (W_skip too, as SAELens' and
      // sparsify's), so ŷ starts at b_dec and the first steps fit the decoder to the encoder.
      sae.weights.W_dec.fill(0);
      if (sae.cfg.transcoder?.skip) sae.weights.W_skip = new Float32Array(width * width);
    }
    if (sae.cfg.dIn !== width) {
      throw new JobInputError(
        `SAE "${cfg.sae}" reads ${sae.cfg.dIn}-wide activations but hook "${hook}" is ${width} wide`,
      );
    }
    const data = await loadDataset(deps.database, cfg.dataset);
    const train = data.batches("train", cfg.batch_size, cfg.seq_len, cfg.seed);
    const ep = await chooseEp(cfg.ep);
    const nativeCpu = (await runtimeStatus()).eps.cpu;
    const saeDevice = asInputError(() =>
      chooseSaeDevice(cfg.sae_device, deps.gpu.info, sae.cfg, nativeCpu)
    );
    // The KL step runs in micro-batches that fit the runtime's memory (or the one asked for).
    const microBatch = asInputError(() =>
      microBatchFor(
        stepShapeOf(model, { batch: cfg.batch_size, seq: cfg.seq_len, dModel: width }),
        ep,
        cfg.micro_batch,
      )
    );
    const dir = `${deps.dataDir}/jobs/${ctx.job.id}`;
    await ctx.setCheckpoint(`${dir}/checkpoints`);
    // Activations sampled through the prefix before training from scratch, each use from its own
    // deterministic stream of training text (seed + k), so a resumed job samples the same.
    const sampling = (k: number, batches: number) => ({
      model,
      hook,
      ep,
      device: ep === "webgpu" ? deps.gpu.device : undefined,
      data: data.batches("train", cfg.batch_size, cfg.seq_len, cfg.seed + k),
      batchSize: cfg.batch_size,
      seqLen: cfg.seq_len,
      batches,
    });
    // From scratch, optionally train on s·x (E‖s·x‖² = d_in); s is folded into the saved SAE. The
    // estimate is deterministic, so a resumed job finds the same s.
    const normalize = pair ? "none" : normalizationFor(init.kind, cfg.normalize_activations);
    const measured = !start && needsScale(init, normalize)
      ? await estimateActivationScale(sampling(1, 16))
      : 1;
    const scale = !start && normalize !== "none" ? measured : 1;
    const planned = stepsOf(cfg);
    const firstSteps = planned - Math.max(1, Math.round(planned * cfg.finetune_fraction));
    // JumpReLU from scratch: b_dec at the activations' geometric median and θ from the spread
    // about it, so about target_l0 latents fire from the first step.
    const centre = !start && init.kind === "jumprelu"
      ? await centreOf(sampling(2, 4), scale)
      : null;
    if (centre) sae.weights.b_dec = centre.bDec;
    const sparsity = start ? {} : scratchSparsity(init, {
      dIn: width,
      rms: scale / measured, // √(E‖x‖²/d_in) of what the SAE reads
      centeredRms: centre?.rms,
      mseSteps: cfg.kind === "mse" ? planned : cfg.kind === "e2e" ? 0 : Math.max(0, firstSteps),
    });
    if (sparsity.theta !== undefined) sae.weights.threshold!.fill(sparsity.theta);
    // A loaded relu / gated / jumprelu SAE that carries no λ (most SAELens releases) starts the
    // controller at the scale-free default of a from-scratch run on its activations' RMS: a fixed
    // λ of a few units took L0 from 33 to 10 within the controller's first 0.1% steps.
    const loadedLambda = start && hasSparsityPenalty(sae.cfg.kind) &&
        sae.cfg.l1Coefficient === undefined && init.l1_coefficient === undefined
      ? scratchSparsity({ ...init, kind: sae.cfg.kind as typeof init.kind }, {
        dIn: width,
        rms: 1 / await estimateActivationScale(sampling(1, 16)),
        mseSteps: 0,
      }).lambda
      : undefined;
    if (scale !== 1) await ctx.emit("log", { message: `activation scaling factor ${scale}` });
    const trainer = guardTrainer(
      await deps.createTrainer(deps.gpu, sae, {
        weightDecay: cfg.weight_decay,
        gradClip: cfg.grad_clip,
        // A gated SAE from scratch keeps unit-norm decoder rows, as the paper and
        // dictionary_learning train it: without them the L1 on ReLU(π_gate)·‖W_dec,j‖ falls by
        // shrinking W_dec while r_mag grows to compensate, and λ chases L0 without moving it.
        decoderConstraint: cfg.decoder_constraint || (!start && init.kind === "gated"),
        // A short run's dead latents show within it (topk keeps its auxk window).
        ...(!start && init.kind !== "topk"
          ? {
            deadWindowTokens: Math.min(
              1_000_000,
              Math.max(cfg.batch_size * cfg.seq_len, Math.floor(cfg.tokens / 8)),
            ),
          }
          : {}),
        jumpBandwidth: sparsity.bandwidth,
        thresholdStartStep: sparsity.thresholdStartStep,
        saeDevice,
      }),
      deps.gpu.device,
      { mustMove: true },
    );
    try {
      const steps = stepsOf(cfg);
      // From scratch: MSE on the first (1 − F) of the tokens, then the chosen objective.
      const ftSteps = start || cfg.kind === "mse" || cfg.kind === "e2e"
        ? steps
        : Math.max(1, Math.round(steps * cfg.finetune_fraction));
      const phases = [
        ...(steps > ftSteps
          ? [{
            name: "pretrain",
            objective: "mse" as const,
            steps: steps - ftSteps,
            lr: pretrainLrFor(init.kind, cfg.pretrain_lr),
            decay: 0,
          }]
          : []),
        {
          name: "finetune",
          objective: cfg.kind,
          steps: ftSteps,
          lr: cfg.lr,
          decay: cfg.decay_fraction,
        },
      ];
      let done = 0, last: (StepMetrics & { phase: string }) | null = null;
      // relu / jumprelu from scratch: λ starts at the scale-free default, warms up in the MSE
      // phase, and the controller holds target_l0 there and on through the fine-tune.
      let lambda = sparsity.lambda ?? sae.cfg.l1Coefficient ?? init.l1_coefficient ??
        loadedLambda ?? 0;
      for (const phase of phases) {
        const common = {
          model,
          hook,
          ep,
          device: ep === "webgpu" ? deps.gpu.device : undefined,
          data: train,
          seqLen: cfg.seq_len,
          steps: phase.steps,
          schedule: {
            lr: phase.lr,
            warmupSteps: Math.min(cfg.warmup_steps, phase.steps),
            decayFraction: phase.decay,
          },
          l1: hasSparsityPenalty(sae.cfg.kind)
            ? {
              lambda,
              target: cfg.l1_target_l0 ?? (start ? undefined : init.target_l0),
              controller: cfg.l1_controller,
              ...(start || phase.objective !== "mse" ? {} : {
                rate: cfg.l1_controller_rate,
                warmupSteps: sparsity.warmupSteps,
                signed: sparsity.signed,
              }),
            }
            : undefined,
          activationScale: scale,
          transcoder: pair,
          metricsEvery: cfg.metrics_every,
          checkpointEvery: cfg.checkpoint_every,
          checkpointDir: `${dir}/checkpoints/${phase.name}`,
          signal: ctx.signal,
          onMetrics: async (m: StepMetrics) => {
            // Steps and tokens count over the whole job, across its phases.
            const step = done + m.step;
            const row = {
              ...m,
              step,
              tokens: step * cfg.batch_size * cfg.seq_len,
              phase: phase.name,
            };
            last = row;
            deps.metrics.add({
              jobId: ctx.job.id,
              step,
              tokens: row.tokens,
              values: numeric(row),
            });
            await ctx.emit("metrics", row);
            await ctx.emit("progress", { step, totalSteps: steps, phase: phase.name });
          },
          // A resume restarts after the newest checkpoint, so the metric rows it covers must be
          // in the database before it is published: a kill just after the rename loses none.
          beforeCheckpoint: () => deps.metrics.flush(),
        };
        // Training from scratch, MSE steps read shuffled activations (the field's practice); the
        // fine-tune arms read tokens in order, so that arms compared see the same data.
        const r = !start && phase.objective === "mse" && cfg.shuffle_buffer_tokens > 0
          ? await runMsePhase({
            ...common,
            saes: [trainer],
            seqBatch: cfg.batch_size,
            stepTokens: cfg.batch_size * cfg.seq_len,
            // No larger than the phase: a short run should not collect tokens it never trains on.
            bufferTokens: Math.min(
              cfg.shuffle_buffer_tokens,
              phase.steps * cfg.batch_size * cfg.seq_len,
            ),
            seed: cfg.seed,
          })
          : await runFinetune({
            ...common,
            objective: phase.objective,
            sae: trainer,
            batchSize: cfg.batch_size,
            skipFirstPositions: cfg.skip_first_positions,
            microBatch,
          });
        done += phase.steps;
        if ("l1Lambdas" in r && r.l1Lambdas[0] !== null) lambda = r.l1Lambdas[0];
        if ("last" in r && r.last?.l1Lambda != null) lambda = r.last.l1Lambda;
        if (r.resumedFrom > 0) {
          await ctx.emit("log", { message: `${phase.name}: resumed at step ${r.resumedFrom}` });
        }
      }
      await deps.metrics.flush();
      const trained = scale === 1
        ? await trainer.toSae()
        : foldScaling(await trainer.toSae(), scale);
      // relu / gated: the λ the controller ended at, in the units of the saved SAE (it reads raw
      // x: the MSE scales by 1/s², the L1 by 1/s), so that a fine-tune of it starts from there
      // rather than from 5.
      if (trained.cfg.kind === "relu" || trained.cfg.kind === "gated") {
        trained.cfg.l1Coefficient = lambda / scale;
      }
      trained.cfg.metadata = {
        ...trained.cfg.metadata,
        model: cfg.model,
        hookName: hook,
        contextSize: cfg.seq_len,
        ...(pair ? { hookNameOut: pair.output } : {}),
      };
      let evaluation = null;
      let prefixes: PrefixEvalRow[] | undefined;
      if (cfg.eval_sequences > 0) {
        await ctx.emit("log", {
          message: `evaluating on ${cfg.eval_sequences} held-out sequences`,
        });
        const val = data.batches("validation", cfg.batch_size, cfg.seq_len, 0, false);
        const n = Math.max(1, Math.floor(cfg.eval_sequences / cfg.batch_size));
        const options = {
          model,
          hook,
          ep,
          device: ep === "webgpu" ? deps.gpu.device : undefined,
          batches: Array.from({ length: n }, () => val.next()),
          batchSize: cfg.batch_size,
          seqLen: cfg.seq_len,
          skipFirstPositions: cfg.skip_first_positions,
          contextLength,
          signal: ctx.signal,
          transcoder: pair,
        };
        evaluation = await ceEval({
          ...options,
          sae: {
            dIn: trained.cfg.dIn,
            reconstruct: async (x, nTok, target) => {
              if (scale === 1) {
                const f = await trainer.forward(x, nTok, true, target);
                return { xhat: f.xhat, l0: f.l0 };
              }
              const f = await trainer.forward(x.map((v) => v * scale), nTok, true);
              return { xhat: f.xhat.map((v) => v / scale), l0: f.l0 };
            },
          },
        });
        // Matryoshka SAEs: each nested prefix on the same held-out batches.
        if (trained.cfg.kind === "matryoshka_batchtopk") {
          prefixes = await evalPrefixes({
            sae: trained,
            full: evaluation,
            options,
            createTrainer: (p) => deps.createTrainer(deps.gpu, p, INFERENCE_ONLY),
          });
        }
      }
      // Registered only once nothing can fail or be cancelled any more: a job cancelled during
      // its final eval leaves no SAE behind.
      ctx.throwIfCancelled();
      // A dead or diverged SAE fails the job rather than being registered as a result.
      const health = saeHealth(
        evaluation
          ? {
            // The evaluation leaves L0 out when no latent fired at all.
            l0: evaluation.recon.l0 ?? 0,
            fvu: evaluation.recon.fvu,
            source: "evaluation",
            steps: stepsOf(cfg),
          }
          : {
            steps: stepsOf(cfg),
            l0: (last as StepMetrics | null)?.l0 ?? NaN,
            // Without an evaluation FVU is known only where the step measured it.
            fvu: (last as StepMetrics | null)?.fvu ?? 0,
            source: "last training step",
          },
      );
      if (!health.ok) throw new Error(`the trained SAE is unusable: ${health.reason}`);
      const saeDir = `${deps.dataDir}/saes/${ctx.job.id}`;
      await saveSae(saeDir, trained);
      await deps.database.db.insert(saes).values({
        id: ctx.job.id,
        name: `${cfg.kind} of ${cfg.sae ?? "a new SAE"} on ${cfg.model}`,
        path: saeDir,
        architecture: trained.cfg.kind,
        dIn: trained.cfg.dIn,
        dSae: trained.cfg.dSae,
        modelId: cfg.model,
        hook,
        cfg: trained.cfg,
        jobId: ctx.job.id,
      }).onConflictDoNothing();
      return {
        sae: ctx.job.id,
        hook,
        steps,
        last,
        eval: evaluation && prefixes ? { ...evaluation, prefixes } : evaluation,
        activationScale: scale,
        runtime: runtimeInfo(ep),
        saeDevice,
      };
    } catch (e) {
      if (e instanceof NonFiniteError && !(await hasCheckpoint(`${dir}/checkpoints`))) {
        throw withoutCheckpoint(e, cfg.sae ?? null);
      }
      throw e;
    } finally {
      trainer.release();
    }
  };
}

function numeric(row: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(row)) {
    if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
  }
  return out;
}

/**
 * The MLP of a transcoder (one fine-tuned, or one asked for from scratch), from the request's hook
 * and hook_out or the SAE's metadata; null for an SAE. Bad requests are JobInputErrors.
 */
function transcoderPairOf(
  model: ModelProto,
  cfg: FinetuneConfig,
  start: Sae | null,
): MlpHookPair | undefined {
  const mode = start ? (start.cfg.transcoder ? "transcoder" : "none") : cfg.init?.transcoder;
  if (!mode || mode === "none") {
    if (cfg.hook_out) {
      throw new JobInputError(
        `hook_out is for transcoders; ${
          start ? `SAE "${cfg.sae}" is not one` : `init.transcoder is "none"`
        }`,
      );
    }
    return undefined;
  }
  const SCRATCH = ["topk", "batchtopk"];
  if (!start && !SCRATCH.includes(cfg.init!.kind)) {
    throw new JobInputError(
      `transcoders train from scratch as ${SCRATCH.join(" or ")}, not ${cfg.init!.kind}`,
    );
  }
  if (cfg.normalize_activations && cfg.normalize_activations !== "none") {
    throw new JobInputError("transcoders train without activation normalisation");
  }
  return asInputError(() =>
    resolveTranscoderHooks(
      model,
      cfg.hook ?? start?.cfg.metadata?.hookName,
      cfg.hook_out,
      start?.cfg.metadata?.hookNameOut,
    )
  );
}

/** The kinds whose sparsity is a penalty with a coefficient λ (held by the L1 controller). */
function hasSparsityPenalty(kind: string): boolean {
  return kind === "relu" || kind === "jumprelu" || kind === "gated";
}
