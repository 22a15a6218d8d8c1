// The paper's comparison on the embedded default, through the HTTP service: from the demo's
// pre-trained MSE SAE, arms {MSE-only, KL+MSE, SAE-LoRA r=2, linear skip r=16, MLP skip,
// two-stage KL+MSE → linear skip, LM-LoRA after the hook} on identical data; or, with --sweep,
// a two-arm batch-size sweep of KL+MSE (App. F). Prints the table, writes DIR/experiment.json and
// the SVG plots under DIR.
//   deno task experiment [--out DIR] [--tokens N] [--sweep] [--adapters] [--adapter-lr X]
// --adapters: only the MSE control and the adapter arms (e.g. to try another --adapter-lr).
import { parseArgs } from "node:util";
import { api, followEvents, ROOT, startService } from "./_client.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string" },
    tokens: { type: "string" },
    sweep: { type: "boolean" },
    "adapter-lr": { type: "string" },
    adapters: { type: "boolean" },
    "eval-sequences": { type: "string" },
  },
});
const tokens = Number(a.tokens ?? 131_072);
const log = (s: string) => console.error(`experiment: ${s}`);

const PAPER_ARMS = [
  { type: "mse" },
  { type: "kl_mse" },
  { type: "sae_lora", rank: 2, alpha: 2 },
  { type: "linear_skip", rank: 16 },
  { type: "mlp_skip", hidden: 128 },
  { type: "two_stage", rank: 16, name: "two_stage kl_mse→linear_skip r=16" },
  { type: "lm_lora", rank: 2, alpha: 2 },
];
const body = a.sweep
  ? {
    name: "batch-size sweep (App. F)",
    sweep: { parameter: "batch_size", values: [4, 16], arm: { type: "kl_mse" } },
  }
  : a.adapters
  ? {
    name: "adapters (App. C–D)",
    arms: PAPER_ARMS.filter((x) => !["kl_mse", "two_stage"].includes(x.type)),
  }
  : { name: "adapters and ablations (App. B–D)", arms: PAPER_ARMS };

const t0 = performance.now();
const dataDir = await Deno.makeTempDir({ prefix: "splice-experiment-" });
const { proc, url } = await startService(dataDir);
try {
  const form = new FormData();
  for (const f of ["cfg.json", "sae_weights.safetensors"]) {
    const bytes = await Deno.readFile(`${ROOT}fixtures/sae/tiny-neox-topk/${f}`);
    form.append(f, new Blob([bytes]), f);
  }
  form.append("name", "tiny-neox TopK 2048/16 (MSE, fixture)");
  const sae = (await api<{ id: string }>(`${url}/saes`, { method: "POST", body: form })).id;
  const exp = await api<{ id: string }>(`${url}/experiments`, {
    method: "POST",
    body: JSON.stringify({
      ...body,
      sae,
      tokens,
      lr: 2e-4,
      ...(a["adapter-lr"] ? { adapter_lr: Number(a["adapter-lr"]) } : {}),
      eval_sequences: Number(a["eval-sequences"] ?? 64),
    }),
  });
  log(`experiment ${exp.id}: ${tokens} tokens per arm`);
  await followEvents(`${url}/experiments/${exp.id}/events`, "experiment", (event, data) => {
    if (event === "log") log(String(data.message));
    else if (event === "metrics" && (data.step as number) % 32 === 0) {
      const m = data as Record<string, number>;
      log(`${data.arm}: step ${m.step} mse ${m.mse.toFixed(4)} kl ${m.kl?.toFixed(4)}`);
    }
  });
  const got = await api<
    { table: Record<string, number | string | null>[]; links: { plots: string[] } }
  >(
    `${url}/experiments/${exp.id}`,
  );
  const cols = ["arm", "ceGap", "ceGapReduction", "ceRecovered", "kl", "fvu", "l0", "seconds"];
  const cell = (v: unknown) =>
    (typeof v === "number" ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(4)) : String(v ?? "—"))
      .padStart(12);
  console.log(cols.map((c) => c.padStart(c === "arm" ? 34 : 12)).join(""));
  for (const r of got.table) {
    console.log(String(r.arm).padStart(34) + cols.slice(1).map((c) => cell(r[c])).join(""));
  }
  if (a.out) {
    await Deno.mkdir(a.out, { recursive: true });
    await Deno.writeTextFile(`${a.out}/experiment.json`, JSON.stringify(got, null, 2) + "\n");
    for (const p of got.links.plots) {
      const svg = await (await fetch(`${url}${p}`)).text();
      await Deno.writeTextFile(`${a.out}/${p.split("/").pop()}`, svg);
    }
    log(`wrote ${a.out}/experiment.json and ${got.links.plots.length} plots`);
  }
  log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
} finally {
  proc.kill("SIGTERM");
  await proc.status;
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
}
