import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  frontierPlots,
  type FrontierResult,
  frontierTable,
  KindsFrontierConfig,
  planKindsFrontier,
} from "../../experiments/kinds_frontier.ts";
import { FinetuneConfig } from "../../train/config.ts";
import { ExperimentRequest } from "../../train/experiment_config.ts";
import { pretrainLrFor } from "../../train/scratch_defaults.ts";

Deno.test("kinds_frontier: every kind × sparsity × objective, on the same data", () => {
  const cfg = KindsFrontierConfig.parse({});
  const runs = planKindsFrontier(cfg);
  assertEquals(runs.length, cfg.kinds.length * cfg.sparsities.length * cfg.objectives.length);
  assertEquals(new Set(runs.map((r) => r.name)).size, runs.length);
  for (const r of runs) {
    // Each run is a valid finetune job, and all share the seed and token stream.
    const job = FinetuneConfig.parse(r.job);
    assertEquals(job.seed, cfg.seed);
    assertEquals(job.tokens, cfg.tokens);
    assertEquals(job.kind, r.objective);
    // MSE-only runs train at the MSE phase's LR of their kind, as kl_mse's MSE phase does.
    if (r.objective === "mse") assertEquals(job.lr, pretrainLrFor(job.init!.kind, undefined));
    const init = job.init!;
    if (r.kind.endsWith("topk")) assertEquals(init.k, r.sparsity);
    else assertEquals(init.target_l0, r.sparsity);
  }
});

Deno.test("kinds_frontier: table and plots have a row and a series per result group", () => {
  const runs = planKindsFrontier(KindsFrontierConfig.parse({ kinds: ["topk", "relu"] }));
  const results: FrontierResult[] = runs.map((r, i) => ({
    ...r,
    l0: r.sparsity + Math.random(),
    fvu: 0.1 + 0.01 * i,
    ceGap: i === 1 ? null : 0.2 + 0.01 * i,
    ...(i === 1 ? { error: "boom" } : {}),
    seconds: 3,
  }));
  const table = frontierTable(results);
  assertEquals(table.split("\n").length, results.length + 2);
  assertStringIncludes(table, "failed: boom");
  const plots = frontierPlots(results);
  for (const svg of [plots.ceGap, plots.fvu]) {
    assert(svg.startsWith("<svg"));
    assertStringIncludes(svg, "topk kl_mse");
    assertStringIncludes(svg, "relu mse");
  }
});

Deno.test("kinds_frontier preset: POST /experiments' body, told apart from arms by `preset`", () => {
  const p = ExperimentRequest.parse({ preset: "kinds_frontier", sparsities: [4, 16] });
  assertEquals(p.preset, "kinds_frontier");
  if (p.preset !== "kinds_frontier") throw new Error("unreachable");
  assertEquals(p.sparsities, [4, 16]);
  assertEquals(p.kinds, ["topk", "batchtopk", "relu", "jumprelu"]);
  // The preset trains its own SAEs: a starting SAE or arms are not its fields.
  assert(!ExperimentRequest.safeParse({ preset: "kinds_frontier", sae: "x" }).success);
  assert(!ExperimentRequest.safeParse({ preset: "kinds_frontier", arms: [] }).success);
  assert(!ExperimentRequest.safeParse({ preset: "other" }).success);
  const arms = ExperimentRequest.parse({ sae: "x", arms: [{ type: "mse" }] });
  assertEquals(arms.preset, undefined);
});
