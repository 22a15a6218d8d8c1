// Trains the demo's starting point: a TopK SAE (n=2048, k=16) on tiny-neox's hook
// /blocks.1/Add_2_output_0 with MSE only, on Brown training text, with splice's own pipeline.
//   ./deno run -A scripts/train_base_sae.ts [--tokens 1048576] [--seed 0] [--out fixtures/sae/tiny-neox-topk]
// The result is committed as a fixture with the command, token count and seed in its README.
import { parseArgs } from "node:util";
import { openDatabase } from "../db/client.ts";
import { MetricsWriter } from "../db/metrics_writer.ts";
import { models } from "../db/schema.ts";
import { acquireGpu } from "../gpu/device.ts";
import { EventHub, MemoryEventStore } from "../jobs/events.ts";
import { finetuneHandler } from "../jobs/finetune_job.ts";
import { MemoryJobStore } from "../jobs/memory_store.ts";
import { JobRunner } from "../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../main.ts";
import { createSaeTrainer } from "../sae/trainers.ts";

export async function trainBaseSae(
  opts: { tokens: number; seed: number; out: string; log?: (s: string) => void },
) {
  const log = opts.log ?? ((s: string) => console.error(s));
  const gpu = await acquireGpu({ log: false });
  const database = await openDatabase({ dataDir: "memory://" });
  await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
  const work = await Deno.makeTempDir({ prefix: "splice-base-sae-" });
  const events = new EventHub(new MemoryEventStore());
  const runner = new JobRunner(new MemoryJobStore(), events, { pollMs: 50 });
  runner.register(
    "finetune",
    finetuneHandler({
      database,
      gpu,
      dataDir: work,
      metrics: new MetricsWriter(database.db),
      createTrainer: (g, sae, o) => createSaeTrainer(g, sae, o),
    }),
  );
  runner.start();
  const job = await runner.submit("finetune", {
    kind: "mse",
    tokens: opts.tokens,
    seed: opts.seed,
    lr: 1e-3,
    decay_fraction: 0.2,
    weight_decay: 0,
    init: { kind: "topk", d_sae: 2048, k: 16 },
    metrics_every: 32,
    checkpoint_every: 256,
    eval_sequences: 64,
  });
  let result: unknown = null;
  for await (const e of events.subscribe(job.id)) {
    if (e.type === "metrics") {
      const m = e.data as Record<string, number>;
      log(
        `step ${m.step} tokens ${m.tokens} mse ${
          m.mse.toFixed(4)
        } l0 ${m.l0} dead ${m.deadLatents} ${m.tokensPerSecond.toFixed(0)} tok/s`,
      );
    } else if (e.type === "result") result = e.data;
    else if (e.type === "error") throw new Error((e.data as { message: string }).message);
  }
  await runner.stop();
  await Deno.mkdir(opts.out, { recursive: true });
  for (const f of ["cfg.json", "sae_weights.safetensors"]) {
    await Deno.copyFile(`${work}/saes/${job.id}/${f}`, `${opts.out}/${f}`);
  }
  await database.close();
  await Deno.remove(work, { recursive: true });
  return result;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { tokens: { type: "string" }, seed: { type: "string" }, out: { type: "string" } },
  });
  const tokens = Number(values.tokens ?? 1 << 20), seed = Number(values.seed ?? 0);
  const out = values.out ?? "fixtures/sae/tiny-neox-topk";
  const t0 = performance.now();
  const result = await trainBaseSae({ tokens, seed, out });
  console.log(
    JSON.stringify(
      {
        tokens,
        seed,
        seconds: (performance.now() - t0) / 1000,
        result: (result as { eval: unknown }).eval,
      },
      null,
      1,
    ),
  );
}
