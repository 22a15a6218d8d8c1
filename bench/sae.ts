// TopK SAE train step (forward, backward, clip, AdamW; activations from the host, x̂ back to it)
// on the GPU adapter, side by side in one run with the same step in PyTorch on the CPU
// (tools/python/sae_step_torch.py: dense decoder, as dictionary_learning does it). Prints a table,
// writes bench/out/sae.json, and ends with `sae_step_speedup_vs_pytorch <ratio>` for d=768.
//   deno task bench sae [--quick]   (--quick: the small case only)
import { acquireGpu } from "../gpu/device.ts";
import { initSae } from "../sae/init.ts";
import { TopKGpuTrainer } from "../sae/topk_trainer.ts";
import { printTable, writeJson } from "./_report.ts";

interface Case {
  d: number;
  n: number;
  k: number;
  tokens: number;
  steps: number;
}
const CASES: Case[] = [
  { d: 128, n: 2048, k: 16, tokens: 4096, steps: 5 },
  { d: 768, n: 16384, k: 64, tokens: 4096, steps: 2 },
];
const quick = Deno.args.includes("--quick");

const gpu = await acquireGpu({ log: false });

async function splice(c: Case): Promise<number> {
  const sae = initSae({ kind: "topk", dIn: c.d, dSae: c.n, k: c.k }, { seed: 0 });
  const t = new TopKGpuTrainer(gpu, sae, {
    weightDecay: 0.01,
    gradClip: 1,
    decoderConstraint: false,
  });
  const x = new Float32Array(c.tokens * c.d).map(() => Math.random() * 2 - 1);
  const step = async () => {
    await t.forward(x, c.tokens);
    await t.backwardAndStep({ wMse: 1, gExt: null, wExt: 0, lr: 1e-4 });
  };
  try {
    await step(); // warm-up: pipelines compile, buffers are made
    const t0 = performance.now();
    for (let s = 0; s < c.steps; s++) await step();
    return (performance.now() - t0) / 1000 / c.steps;
  } finally {
    t.release();
  }
}

async function torch(c: Case): Promise<number | null> {
  const script = new URL("../tools/python/sae_step_torch.py", import.meta.url).pathname;
  for (const py of ["/usr/bin/python3", "python3"]) {
    try {
      const out = await new Deno.Command(py, {
        args: [script, ...Object.entries(c).flatMap(([k, v]) => [`--${k}`, String(v)])],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (out.code === 0) {
        return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!)
          .seconds_per_step;
      }
    } catch { /* try the next interpreter */ }
  }
  return null;
}

// FLOPs each side does: ours is the dense encoder plus four O(N·K·d) sparse products; PyTorch's
// dense path is five N×d×n products (encoder, decode, and three in the backward).
const flopsSplice = (c: Case) => 2 * c.tokens * c.d * c.n + 8 * c.tokens * c.k * c.d;
const flopsTorch = (c: Case) => 10 * c.tokens * c.d * c.n;

const rows: Record<string, string | number>[] = [];
const results = [];
for (const c of quick ? CASES.slice(0, 1) : CASES) {
  const ours = await splice(c);
  const theirs = await torch(c);
  const r = {
    case: `d=${c.d} n=${c.n} k=${c.k} N=${c.tokens}`,
    splice_s: ours,
    splice_tok_s: c.tokens / ours,
    splice_gflops: flopsSplice(c) / ours / 1e9,
    torch_s: theirs ?? NaN,
    torch_tok_s: theirs ? c.tokens / theirs : NaN,
    torch_gflops: theirs ? flopsTorch(c) / theirs / 1e9 : NaN,
    speedup: theirs ? theirs / ours : NaN,
  };
  rows.push(r);
  results.push({ ...c, ...r });
}
printTable(rows);
const path = await writeJson("sae", { adapter: gpu.info.description, results });
console.log(`wrote ${path}`);
const big = results.find((r) => r.d === 768) ?? results[0];
console.log(
  `sae_step_speedup_vs_pytorch ${Number.isFinite(big.speedup) ? big.speedup.toFixed(3) : "nan"}`,
);
