// Trains the demo's starting point: a TopK SAE (n=2048, k=16) on tiny-neox's hook
// /blocks.1/Add_2_output_0 with MSE only, on Brown training text, with splice's own pipeline.
//   ./deno run -A scripts/train_base_sae.ts [--tokens 1048576] [--seed 0] [--out fixtures/sae/tiny-neox-topk]
// The result is committed as a fixture with the command, token count and seed in its README.
import { parseArgs } from "node:util";
import { localFinetunes } from "./_local_jobs.ts";

export async function trainBaseSae(
  opts: { tokens: number; seed: number; out: string; log?: (s: string) => void },
) {
  const log = opts.log ?? ((s: string) => console.error(s));
  const jobs = await localFinetunes();
  try {
    const out = await jobs.run({
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
    }, (metrics) => {
      const m = metrics as Record<string, number>;
      log(
        `step ${m.step} tokens ${m.tokens} mse ${
          m.mse.toFixed(4)
        } l0 ${m.l0} dead ${m.deadLatents} ${m.tokensPerSecond.toFixed(0)} tok/s`,
      );
    });
    if ("error" in out) throw new Error(out.error);
    const result = out.result as { sae: string; eval: unknown };
    await Deno.mkdir(opts.out, { recursive: true });
    for (const f of ["cfg.json", "sae_weights.safetensors"]) {
      await Deno.copyFile(`${jobs.dataDir}/saes/${result.sae}/${f}`, `${opts.out}/${f}`);
    }
    return result;
  } finally {
    await jobs.close();
  }
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
        result: result.eval,
      },
      null,
      1,
    ),
  );
}
