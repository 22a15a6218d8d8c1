// The README's main job, through the HTTP service as a user would: start splice, upload the
// pre-trained MSE TopK SAE (fixtures/sae/tiny-neox-topk, made by scripts/train_base_sae.ts), run
// the MSE-only arm and the KL+MSE arm on identical data, evaluate both on held-out Brown text, and
// print one table with the CE-gap reduction of KL+MSE over MSE-only.
//   deno task demo [--out DIR] [--tokens N] [--lr X] [--from-scratch] [--base-tokens N]
import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url).pathname;
const BASE_SAE = `${ROOT}fixtures/sae/tiny-neox-topk`;

interface Eval {
  ceClean: number;
  ceSpliced: number;
  ceZeroAblation: number;
  ceRecovered: number;
  ceGap: number;
  kl: number;
  recon: { fvu: number; l0: number | null; mse: number };
}

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

async function startService(dataDir: string) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: Number(a.port ?? 0) });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "--port", String(port), "--data-dir", dataDir],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return { proc, url };
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the service did not answer /health within 2 minutes");
}

async function api<T>(url: string, init?: RequestInit): Promise<T> {
  const r = await fetch(url, init);
  const body = await r.json();
  if (!r.ok) {
    throw new Error(`${init?.method ?? "GET"} ${url}: ${r.status} ${JSON.stringify(body.error)}`);
  }
  return body as T;
}

/** Follows a job's SSE stream to its end; returns its result. */
async function follow(
  url: string,
  id: string,
  label: string,
): Promise<{ eval: Eval; sae: string }> {
  const res = await fetch(`${url}/finetunes/${id}/events`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", result: { eval: Eval; sae: string } | null = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = Object.fromEntries(
        block.split("\n").filter((l) => !l.startsWith(":") && l.includes(":")).map((
          l,
        ) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]),
      );
      if (!ev.data) continue;
      const data = JSON.parse(ev.data);
      if (ev.event === "metrics") {
        const kl = data.kl === null ? "" : ` kl ${data.kl.toFixed(4)} α ${data.alpha.toFixed(2)}`;
        log(
          `${label}: step ${data.step} tokens ${data.tokens} mse ${data.mse.toFixed(4)}${kl} l0 ${
            data.l0.toFixed(1)
          } ${data.tokensPerSecond.toFixed(0)} tok/s`,
        );
      } else if (ev.event === "log") log(`${label}: ${data.message}`);
      else if (ev.event === "result") result = data;
      else if (ev.event === "error") throw new Error(`${label} failed: ${data.message}`);
      else if (ev.event === "state" && data.state === "cancelled") {
        throw new Error(`${label} was cancelled`);
      }
    }
  }
  if (!result) throw new Error(`${label}: the stream ended without a result`);
  return result;
}

const t0 = performance.now();
const dataDir = await Deno.makeTempDir({ prefix: "splice-demo-" });
const { proc, url } = await startService(dataDir);
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
  const arms: Record<string, { eval: Eval; sae: string }> = {};
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

  const row = (
    name: string,
    e: Eval,
  ) => [
    name,
    e.ceClean,
    e.ceSpliced,
    e.ceZeroAblation,
    e.ceRecovered,
    e.ceGap,
    e.kl,
    e.recon.fvu,
    e.recon.l0 ?? NaN,
  ];
  const head = [
    "arm",
    "CE clean",
    "CE spliced",
    "CE zero",
    "recovered",
    "CE gap",
    "KL",
    "FVU",
    "L0",
  ];
  const rows = Object.entries(arms).map(([k, r]) => row(k, r.eval));
  const fmt = (v: string | number) => (typeof v === "number" ? v.toFixed(4) : v).padStart(11);
  console.log(head.map(fmt).join(""));
  for (const r of rows) console.log(r.map(fmt).join(""));
  const reduction = (arms.mse.eval.ceGap - arms.kl_mse.eval.ceGap) / arms.mse.eval.ceGap;
  console.log(`CE-gap reduction of kl_mse over mse: ${(100 * reduction).toFixed(1)}%`);
  const summary = {
    tokensPerArm: tokens,
    lr,
    evalSequences,
    averaging: "pooled over tokens",
    arms: Object.fromEntries(Object.entries(arms).map(([k, r]) => [k, r.eval])),
    ceGapReduction: reduction,
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
