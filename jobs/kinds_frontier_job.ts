// The kinds_frontier preset of the experiment job: every planned run (experiments/kinds_frontier.ts)
// is one finetune job's handler run in this job, from scratch on the same seed and token stream.
// Each finished run is stored in the experiments row as it ends, so a restarted experiment keeps
// them and reruns the one it was in (which resumes from its own checkpoints: a run's directory is
// named after the experiment and the run's index).
import {
  frontierPlots,
  type FrontierResult,
  frontierRows,
  frontierTable,
  planKindsFrontier,
} from "../experiments/kinds_frontier.ts";
import { chooseEp, runtimeInfo } from "../lm/session.ts";
import { NonFiniteError } from "../train/checkpoint.ts";
import type { KindsFrontierPreset } from "../train/experiment_config.ts";
import { type FinetuneDeps, finetuneHandler } from "./finetune_job.ts";
import { experimentRow } from "./experiment_row.ts";
import type { JobContext } from "./runner.ts";

/** The experiments row's result for this preset (the route shows `table` and serves `plots`). */
export interface KindsFrontierResult {
  preset: "kinds_frontier";
  runs: FrontierResult[];
  table: Record<string, number | string | null>[];
  /** The same table in Markdown. */
  markdown: string;
  plots: Record<string, string>;
  arms: [];
}

/** A run's health-check failure (dead or diverged SAE) is a point of the frontier, not a crash. */
const UNUSABLE = "the trained SAE is unusable";

export async function runKindsFrontier(
  deps: FinetuneDeps,
  ctx: JobContext,
  cfg: KindsFrontierPreset,
): Promise<unknown> {
  const { db } = deps.database;
  const { stored, save } = await experimentRow<KindsFrontierResult>(db, ctx.job.id, cfg);
  const plan = planKindsFrontier(cfg);
  const done: FrontierResult[] = (stored?.runs ?? [])
    .filter((r) => plan.some((p) => p.name === r.name));
  const result = (runs: FrontierResult[], plots: Record<string, string>): KindsFrontierResult => ({
    preset: "kinds_frontier",
    runs,
    table: frontierRows(runs),
    markdown: frontierTable(runs),
    plots,
    arms: [],
  });
  const finetune = finetuneHandler(deps);
  for (const [i, run] of plan.entries()) {
    if (done.some((r) => r.name === run.name)) continue;
    await ctx.emit("log", { message: `run ${i + 1}/${plan.length}: ${run.name}` });
    const t0 = performance.now();
    const child: JobContext = {
      job: { ...ctx.job, id: `${ctx.job.id}-run${i}`, kind: "finetune", config: run.job },
      signal: ctx.signal,
      throwIfCancelled: () => ctx.throwIfCancelled(),
      // The run finds its checkpoints under its own id; the experiment job records none.
      setCheckpoint: () => Promise.resolve(),
      emit: async (type, data) => {
        if (type === "metrics") {
          await ctx.emit("metrics", { ...(data as object), arm: run.name });
        } else if (type === "progress") {
          const p = data as { step: number; totalSteps: number; phase: string };
          await ctx.emit("progress", { ...p, arm: run.name, armIndex: i, arms: plan.length });
        } else if (type === "log") {
          await ctx.emit("log", {
            message: `${run.name}: ${(data as { message: string }).message}`,
          });
        } else await ctx.emit(type, data);
      },
    };
    let r: FrontierResult;
    try {
      type Eval = { ceGap: number; recon: { fvu: number; l0: number | null } };
      const out = await finetune(child) as { eval: Eval | null };
      r = {
        ...run,
        l0: out.eval?.recon.l0 ?? null,
        fvu: out.eval?.recon.fvu ?? null,
        ceGap: out.eval?.ceGap ?? null,
        seconds: (performance.now() - t0) / 1000,
      };
    } catch (e) {
      // A dead or diverged SAE is what the frontier reports for that kind and sparsity; anything
      // else (a bad model, hook or data set, cancellation, the GPU) fails the experiment.
      const msg = (e as Error).message ?? String(e);
      if (ctx.signal.aborted || !(e instanceof NonFiniteError || msg.startsWith(UNUSABLE))) {
        throw e;
      }
      const seconds = (performance.now() - t0) / 1000;
      r = { ...run, l0: null, fvu: null, ceGap: null, error: msg, seconds };
    }
    done.push(r);
    await save(result(done, {}));
    await ctx.emit("log", { message: frontierTable([r]).split("\n")[2] });
  }
  const runs = plan.map((p) => done.find((r) => r.name === p.name)!);
  const plots = frontierPlots(runs);
  const final = result(runs, { ce_gap_vs_l0: plots.ceGap, fvu_vs_l0: plots.fvu });
  await save(final);
  return {
    experiment: ctx.job.id,
    preset: "kinds_frontier",
    table: final.table,
    runtime: runtimeInfo(await chooseEp(cfg.ep)),
  };
}
