// The README's main job, through the HTTP service as a user would: start splice, upload the
// pre-trained MSE TopK SAE (fixtures/sae/tiny-neox-topk, made by scripts/train_base_sae.ts), run
// the MSE-only arm and the KL+MSE arm on identical data, evaluate both on held-out Brown text, and
// print one table with the CE-gap reduction of KL+MSE over MSE-only.
//   deno task demo [--out DIR] [--tokens N] [--lr X] [--from-scratch] [--base-tokens N]
import { parseArgs } from "node:util";
import { EVAL_HEADERS, evalCells } from "../lib/eval_cells.js";
import { api, followEvents, ROOT, startService } from "./_client.ts";
import type { CeEvalResult } from "../eval/ce_eval.ts";

const BASE_SAE = `${ROOT}fixtures/sae/tiny-neox-topk`;

type Eval = CeEvalResult;

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string" },
    tokens: { type: "string" },
    lr: { type: "string" },
    "from-scratch": { type: "boolean" },
    "base-tokens": { type: "string" },
    "eval-sequences": { type: "string" },
    port: { type: "string" },
  },
});
const tokens = Number(a.tokens ?? 262_144), lr = Number(a.lr ?? 2e-4);
const evalSequences = Number(a["eval-sequences"] ?? 64);

function log(s: string) {
  console.error(`demo: ${s}`);
}

/** Follows a fine-tune's SSE stream to its end, logging its metrics; returns its result. */
type Runtime = { name: string; ep: string };
function follow(
  url: string,
  id: string,
  label: string,
): Promise<{ eval: Eval; sae: string; runtime: Runtime; saeDevice: string }> {
  return followEvents(`${url}/finetunes/${id}/events`, label, (event, data) => {
    if (event === "metrics") {
      const m = data as Record<string, number>;
      const kl = m.kl === null ? "" : ` kl ${m.kl.toFixed(4)} α ${m.alpha.toFixed(2)}`;
      log(
        `${label}: step ${m.step} tokens ${m.tokens} mse ${m.mse.toFixed(4)}${kl} l0 ${
          m.l0.toFixed(1)
        } ${m.tokensPerSecond.toFixed(0)} tok/s`,
      );
    } else if (event === "log") log(`${label}: ${data.message}`);
  });
}

const t0 = performance.now();
const dataDir = await Deno.makeTempDir({ prefix: "splice-demo-" });
const { proc, url } = await startService(dataDir, Number(a.port ?? 0));
log(`service at ${url} (data in ${dataDir})`);
try {
  let saeId: string;
  if (a["from-scratch"]) {
    const baseTokens = Number(a["base-tokens"] ?? 1 << 20);
    log(`training the MSE base SAE from scratch on ${baseTokens} tokens`);
    const job = await api<{ id: string }>(`${url}/finetunes`, {
      method: "POST",
      body: JSON.stringify({
        kind: "mse",
        tokens: baseTokens,
        lr: 1e-3,
        decay_fraction: 0.2,
        weight_decay: 0,
        init: { kind: "topk", d_sae: 2048, k: 16 },
        metrics_every: 64,
        eval_sequences: 0,
      }),
    });
    saeId = (await follow(url, job.id, "base")).sae;
  } else {
    try {
      await Deno.stat(`${BASE_SAE}/cfg.json`);
    } catch {
      throw new Error(`no pre-trained SAE at ${BASE_SAE}: run with --from-scratch`);
    }
    const form = new FormData();
    for (const f of ["cfg.json", "sae_weights.safetensors"]) {
      form.append(f, new Blob([await Deno.readFile(`${BASE_SAE}/${f}`)]), f);
    }
    form.append("name", "tiny-neox TopK 2048/16 (MSE, fixture)");
    saeId = (await api<{ id: string }>(`${url}/saes`, { method: "POST", body: form })).id;
  }
  const common = {
    sae: saeId,
    tokens,
    lr,
    batch_size: 8,
    seq_len: 128,
    seed: 1,
    metrics_every: 16,
    checkpoint_every: 64,
    eval_sequences: evalSequences,
  };
  log(`arms: mse and kl_mse, ${tokens} tokens each at lr ${lr}, identical data (seed 1)`);
  const arms: Record<string, { eval: Eval; sae: string; runtime: Runtime; saeDevice: string }> = {};
  const jobs = {
    mse: await api<{ id: string }>(`${url}/finetunes`, {
      method: "POST",
      body: JSON.stringify({ ...common, kind: "mse" }),
    }),
    kl_mse: await api<{ id: string }>(`${url}/finetunes`, {
      method: "POST",
      body: JSON.stringify({ ...common, kind: "kl_mse" }),
    }),
  };
  const done = await Promise.all(
    Object.entries(jobs).map(async ([k, j]) => [k, await follow(url, j.id, k)] as const),
  );
  for (const [k, r] of done) arms[k] = r;

  const row = (name: string, e: Eval) => [name, ...evalCells(e)];
  const head = ["arm", ...EVAL_HEADERS];
  const rows = Object.entries(arms).map(([k, r]) => row(k, r.eval));
  const fmt = (v: string | number) => (typeof v === "number" ? v.toFixed(4) : v).padStart(11);
  console.log(head.map(fmt).join(""));
  for (const r of rows) console.log(r.map(fmt).join(""));
  const reduction = (arms.mse.eval.ceGap - arms.kl_mse.eval.ceGap) / arms.mse.eval.ceGap;
  console.log(`CE-gap reduction of kl_mse over mse: ${(100 * reduction).toFixed(1)}%`);
  const runtime = arms.kl_mse.runtime;
  log(`LM on ${runtime.name}, ep ${runtime.ep}; SAE on ${arms.kl_mse.saeDevice}`);
  const summary = {
    tokensPerArm: tokens,
    lr,
    evalSequences,
    averaging: "pooled over tokens",
    arms: Object.fromEntries(Object.entries(arms).map(([k, r]) => [k, r.eval])),
    ceGapReduction: reduction,
    runtime,
    saeDevice: arms.kl_mse.saeDevice,
    seconds: (performance.now() - t0) / 1000,
  };
  if (a.out) {
    await Deno.mkdir(a.out, { recursive: true });
    await Deno.writeTextFile(`${a.out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
    for (const [k, r] of Object.entries(arms)) {
      await Deno.mkdir(`${a.out}/${k}`, { recursive: true });
      for (const f of ["cfg.json", "sae_weights.safetensors"]) {
        const res = await fetch(`${url}/saes/${r.sae}/${f}`);
        await Deno.writeFile(`${a.out}/${k}/${f}`, new Uint8Array(await res.arrayBuffer()));
      }
    }
    log(`wrote ${a.out}/summary.json and each arm's SAE under ${a.out}/mse and ${a.out}/kl_mse`);
  }
  log(`done in ${summary.seconds.toFixed(0)} s`);
} finally {
  proc.kill("SIGTERM");
  await proc.status;
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
}
