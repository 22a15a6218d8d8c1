// The "experiment" job: runs the arms of an ExperimentConfig one after another from the same SAE
// on the same data order (train/experiment.ts), stores each finished arm as it goes (so a restarted
// job skips them), and ends with the results table and the SVG plots in the experiments row. A
// preset (`kinds_frontier`) trains its own SAEs instead: jobs/kinds_frontier_job.ts.
import { bandChart, barChart, lineChart } from "../experiments/svg.ts";
import { resolveHook } from "../lm/hooks.ts";
import { resolveTranscoderHooks } from "../lm/transcoder_graphs.ts";
import { type ArmResult, runArm } from "../train/experiment.ts";
import { expandArms, ExperimentRequest } from "../train/experiment_config.ts";
import { createTrainer } from "../sae/sae_device.ts";
import { experimentRow } from "./experiment_row.ts";
import { runKindsFrontier } from "./kinds_frontier_job.ts";
import { loadDataset } from "./datasets.ts";
import {
  asInputError,
  type FinetuneDeps,
  JobInputError,
  loadModelRow,
  loadSaeById,
} from "./finetune_job.ts";
import { chooseEp, runtimeInfo } from "../lm/session.ts";
import type { JobContext, JobHandler } from "./runner.ts";

/** A preset's runs build their trainers with `createTrainer` (default: the service's). */
export type ExperimentDeps =
  & Omit<FinetuneDeps, "createTrainer">
  & Partial<Pick<FinetuneDeps, "createTrainer">>;

export interface ExperimentResult {
  arms: ArmResult[];
  /** One row per arm; ceGapReduction is relative to the arm named "mse" when there is one. */
  table: Record<string, number | string | null>[];
  plots: Record<string, string>;
}

export function resultTable(arms: ArmResult[]): ExperimentResult["table"] {
  const control = arms.find((a) => a.type === "mse");
  return arms.map((a) => ({
    arm: a.name,
    type: a.type,
    tokens: a.tokens,
    ceGap: a.final.ceGap,
    ceRecovered: a.final.ceRecovered,
    kl: a.final.kl,
    fvu: a.final.fvu,
    l0: a.final.l0,
    ceGapReduction: control ? (control.final.ceGap - a.final.ceGap) / control.final.ceGap : null,
    seconds: a.seconds,
    tokensPerSecond: a.tokensPerSecond,
  }));
}

export function resultPlots(arms: ArmResult[]): Record<string, string> {
  const withStability = arms.filter((a) => a.stability.decoder.length);
  return {
    ce_gap_curve: lineChart(
      "CE gap on held-out text during training",
      "tokens",
      "CE gap (nats)",
      arms.map((a) => ({ name: a.name, points: a.curve })),
    ),
    final_ce_gap: barChart(
      "Final CE gap by arm",
      "CE gap (nats)",
      arms.map((a) => ({ name: a.name, value: a.final.ceGap })),
    ),
    weight_stability: bandChart(
      "Decoder rows: cosine to the start (25th / 50th / 75th percentile)",
      "tokens",
      "cosine similarity",
      withStability.map((a) => ({ name: a.name, points: a.stability.decoder })),
    ),
    weight_stability_encoder: bandChart(
      "Encoder columns: cosine to the start (25th / 50th / 75th percentile)",
      "tokens",
      "cosine similarity",
      withStability.map((a) => ({ name: a.name, points: a.stability.encoder })),
    ),
  };
}

export function experimentHandler(deps: ExperimentDeps): JobHandler {
  return async (ctx: JobContext) => {
    const request = ExperimentRequest.parse(ctx.job.config);
    if (request.preset === "kinds_frontier") {
      return await runKindsFrontier(
        { ...deps, createTrainer: deps.createTrainer ?? createTrainer },
        ctx,
        request,
      );
    }
    const cfg = request;
    const { db } = deps.database;
    const { model, contextLength } = await loadModelRow(deps.database, cfg.model);
    const sae = await loadSaeById(deps.database, cfg.sae);
    const spec = cfg.hook ?? sae.cfg.metadata?.hookName;
    if (!spec) throw new JobInputError(`SAE "${cfg.sae}" names no hook; pass "hook"`);
    // A transcoder's arms replace its MLP's output (hook: mlp:<layer> or the MLP's input).
    const transcoder = sae.cfg.transcoder
      ? asInputError(() =>
        resolveTranscoderHooks(model, spec, undefined, sae.cfg.metadata?.hookNameOut)
      )
      : undefined;
    const hook = asInputError(() => resolveHook(model, transcoder?.input ?? spec));
    const data = await loadDataset(deps.database, cfg.dataset);
    const ep = await chooseEp(cfg.ep);
    const arms = expandArms(cfg);
    const { stored, save } = await experimentRow<Partial<ExperimentResult>>(db, ctx.job.id, cfg);
    const done: ArmResult[] = (stored?.arms ?? []).filter((a) =>
      arms.some((s) => s.name === a.name)
    );
    for (const [i, arm] of arms.entries()) {
      if (done.some((a) => a.name === arm.name)) continue;
      await ctx.emit("log", { message: `arm ${i + 1}/${arms.length}: ${arm.name}` });
      const r = await runArm(arm, {
        cfg,
        gpu: deps.gpu,
        model,
        hook,
        ep,
        sae,
        contextLength,
        signal: ctx.signal,
        transcoder,
        trainBatches: (batch) => data.batches("train", batch, cfg.seq_len, cfg.seed),
        evalBatches: (sequences, batch) => {
          const val = data.batches("validation", batch, cfg.seq_len, 0, false);
          return Array.from(
            { length: Math.max(1, Math.floor(sequences / batch)) },
            () => val.next(),
          );
        },
        onMetrics: async (m) => {
          await ctx.emit("metrics", { ...m, arm: arm.name });
          await ctx.emit("progress", {
            arm: arm.name,
            armIndex: i,
            arms: arms.length,
            step: m.step,
          });
        },
      });
      done.push(r);
      await save({ arms: done, table: resultTable(done) });
      await ctx.emit("log", {
        message: `${arm.name}: CE gap ${r.final.ceGap.toFixed(4)}, FVU ${r.final.fvu.toFixed(4)}`,
      });
    }
    const ordered = arms.map((a) => done.find((d) => d.name === a.name)!);
    const result: ExperimentResult = {
      arms: ordered,
      table: resultTable(ordered),
      plots: resultPlots(ordered),
    };
    await save(result);
    return { experiment: ctx.job.id, table: result.table, runtime: runtimeInfo(ep) };
  };
}
