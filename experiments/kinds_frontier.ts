// The kinds_frontier preset: every SAE kind at several sparsities, trained from scratch on
// identical data (same seed, same token stream), MSE-only and KL+MSE (kl_mse on the last
// fraction) side by side; CE gap vs L0 and FVU vs L0 per kind and objective, as the paper's
// frontier figures. This module plans the runs and renders the results; the runner is the
// experiment job (`POST /experiments` with `"preset": "kinds_frontier"`, jobs/kinds_frontier_job.ts),
// each run one finetune job's handler.
import { z } from "zod";
import { pretrainLrFor } from "../train/scratch_defaults.ts";
import { lineChart, type Series } from "./svg.ts";

export const KindsFrontierConfig = z.object({
  kinds: z.array(z.enum(["topk", "batchtopk", "relu", "jumprelu", "gated"])).min(1)
    .default(["topk", "batchtopk", "relu", "jumprelu"]),
  sparsities: z.array(z.number().int().min(1).max(256)).min(1).max(8).default([8, 32])
    .describe("k for topk and batchtopk, target_l0 for relu, jumprelu and gated"),
  objectives: z.array(z.enum(["mse", "kl_mse"])).min(1).default(["mse", "kl_mse"]),
  tokens: z.number().int().min(1).max(1e10).default(32_768).describe("training tokens per run"),
  d_sae: z.number().int().min(1).default(512),
  seq_len: z.number().int().min(2).default(64),
  batch_size: z.number().int().min(1).default(8),
  eval_sequences: z.number().int().min(1).default(16),
  seed: z.number().int().min(0).default(0),
  model: z.string().min(1).default("tiny-neox"),
  hook: z.string().min(1).optional().describe("default: the model's default hook"),
  dataset: z.string().min(1).default("brown"),
  ep: z.enum(["auto", "cpu", "cuda", "webgpu", "wasm"]).default("auto"),
}).strict();
export type KindsFrontierConfig = z.infer<typeof KindsFrontierConfig>;

export interface FrontierRun {
  name: string;
  kind: string;
  sparsity: number;
  objective: "mse" | "kl_mse";
  /** The finetune job's config. */
  job: Record<string, unknown>;
}

export function planKindsFrontier(cfg: KindsFrontierConfig): FrontierRun[] {
  const runs: FrontierRun[] = [];
  for (const kind of cfg.kinds) {
    for (const sparsity of cfg.sparsities) {
      const init = kind === "topk" || kind === "batchtopk"
        ? { kind, d_sae: cfg.d_sae, k: sparsity }
        : { kind, d_sae: cfg.d_sae, target_l0: sparsity };
      for (const objective of cfg.objectives) {
        runs.push({
          name: `${kind} ${kind.endsWith("topk") ? "k" : "target"}=${sparsity} ${objective}`,
          kind,
          sparsity,
          objective,
          job: {
            kind: objective,
            // MSE-only from scratch is one phase at `lr`: give it kl_mse's MSE-phase LR (the
            // kind's), decaying over the fraction kl_mse fine-tunes on, so the two differ in the
            // objective only.
            ...(objective === "mse"
              ? { lr: pretrainLrFor(kind, undefined), decay_fraction: 0.05 }
              : {}),
            model: cfg.model,
            ...(cfg.hook ? { hook: cfg.hook } : {}),
            dataset: cfg.dataset,
            ep: cfg.ep,
            tokens: cfg.tokens,
            batch_size: cfg.batch_size,
            seq_len: cfg.seq_len,
            seed: cfg.seed,
            eval_sequences: cfg.eval_sequences,
            metrics_every: 8,
            init,
          },
        });
      }
    }
  }
  return runs;
}

export interface FrontierResult extends FrontierRun {
  /** null: the run failed (its error is kept). */
  l0: number | null;
  fvu: number | null;
  ceGap: number | null;
  error?: string;
  seconds: number;
}

/** One series per kind and objective, points sorted by L0. */
function series(results: FrontierResult[], y: "fvu" | "ceGap"): Series[] {
  const groups = new Map<string, [number, number][]>();
  for (const r of results) {
    if (r.l0 === null || r[y] === null) continue;
    const key = `${r.kind} ${r.objective}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push([r.l0, r[y]!]);
  }
  return [...groups].map(([name, points]) => ({
    name,
    points: points.sort((a, b) => a[0] - b[0]),
  }));
}

export function frontierPlots(results: FrontierResult[]): { ceGap: string; fvu: string } {
  return {
    ceGap: lineChart(
      "CE gap vs L0",
      "L0 at evaluation",
      "CE gap (nats)",
      series(results, "ceGap"),
    ),
    fvu: lineChart("FVU vs L0", "L0 at evaluation", "FVU", series(results, "fvu")),
  };
}

/** The results as rows of the experiment's table (JSON), one per run. */
export function frontierRows(results: FrontierResult[]): Record<string, number | string | null>[] {
  return results.map((r) => ({
    run: r.name,
    kind: r.kind,
    sparsity: r.sparsity,
    objective: r.objective,
    l0: r.l0,
    fvu: r.fvu,
    ceGap: r.ceGap,
    error: r.error ?? null,
    seconds: r.seconds,
  }));
}

/** The results as a Markdown table (bench/RESULTS.md). */
export function frontierTable(results: FrontierResult[]): string {
  const f = (v: number | null, d: number) => v === null ? "–" : v.toFixed(d);
  return [
    "| run | L0 at eval | FVU | CE gap (nats) | s |",
    "| --- | --- | --- | --- | --- |",
    ...results.map((r) =>
      `| ${r.name} | ${f(r.l0, 1)} | ${f(r.fvu, 3)} | ${
        r.error ? `failed: ${r.error}` : f(r.ceGap, 3)
      } | ${r.seconds.toFixed(0)} |`
    ),
  ].join("\n");
}
