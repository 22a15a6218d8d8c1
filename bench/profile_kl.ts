// Where the time of the KL step goes: runs the KL-step graph (lm/step_graphs.ts) on the native
// CPU EP with ONNX Runtime's profiler and prints the time per op type, beside one plain forward
// of the same batch. For the graph work of issue "the paper's scale".
//   deno task bench profile_kl MODEL.onnx HOOK [--batch 2] [--seq 1024]
import { parseArgs } from "node:util";
import { loadModel } from "../lm/onnx.ts";
import { encodeModel } from "../lm/onnx.ts";
import { loadNativeOrt } from "../lm/native_ort.ts";
import { klStepGraph } from "../lm/step_graphs.ts";
import { prefix } from "../lm/surgery.ts";
import { stepShapeOf } from "../train/memory.ts";
import { printTable, writeJson } from "./_report.ts";

const { values: a, positionals } = parseArgs({
  args: Deno.args.slice(Deno.args[0] === "profile_kl" ? 1 : 0),
  allowPositionals: true,
  options: { batch: { type: "string" }, seq: { type: "string" } },
});
const [path, hook] = positionals;
const B = Number(a.batch ?? 2), T = Number(a.seq ?? 1024);
const ort = await loadNativeOrt();
const model = await loadModel(path);
const vocab = stepShapeOf(model, { batch: B, seq: T, dModel: 0 }).vocab;
const dir = await Deno.makeTempDir();
const session = (m: Uint8Array, profile: boolean) =>
  ort.InferenceSession.create(m, {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    enableProfiling: profile,
    profileFilePrefix: `${dir}/p`,
  });
const ids = new ort.Tensor(
  "int64",
  BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7919) % vocab)),
  [B, T],
);
const timed = async (s: Awaited<ReturnType<typeof session>>, feeds: Record<string, unknown>) => {
  await s.run(feeds as never);
  const t0 = performance.now();
  await s.run(feeds as never);
  return performance.now() - t0;
};
const full = await session(encodeModel(model), false);
const forwardMs = await timed(full, { [full.inputNames[0]]: ids });
await full.release();
const pre = await session(encodeModel(prefix(model, hook)), false);
const x = (await pre.run({ [pre.inputNames[0]]: ids }))[pre.outputNames[0]];
const prefixMs = await timed(pre, { [pre.inputNames[0]]: ids });
await pre.release();
const kl = await session(encodeModel(klStepGraph(model, hook)), true);
const xd = x.data as Float32Array;
const feeds: Record<string, unknown> = {
  hook_clean: x,
  hook: new ort.Tensor("float32", xd.map((v, i) => v * (1 + 0.05 * Math.sin(i))), x.dims),
  kl_mask: new ort.Tensor("float32", new Float32Array(B * T).fill(1), [B, T]),
  input_ids: ids,
};
const f = Object.fromEntries(kl.inputNames.map((n) => [n, feeds[n]]));
await kl.run(f as never);
const t0 = performance.now();
await kl.run(f as never);
const klMs = performance.now() - t0;
await kl.endProfiling();
await kl.release();
const file = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`).find((n) =>
  n.endsWith(".json")
)!;
// deno-lint-ignore no-explicit-any
const events = JSON.parse(await Deno.readTextFile(file)) as any[];
const byOp = new Map<string, { us: number; n: number }>();
// The second run's node events (the first is the warm-up).
const runs = events.filter((e) => e.name === "model_run");
const last = runs.at(-1);
for (const e of events) {
  if (e.cat !== "Node" || !e.args?.op_name || !e.name.endsWith("_kernel_time")) continue;
  if (last && (e.ts < last.ts || e.ts > last.ts + last.dur)) continue;
  const r = byOp.get(e.args.op_name) ?? { us: 0, n: 0 };
  r.us += e.dur;
  r.n++;
  byOp.set(e.args.op_name, r);
}
const total = [...byOp.values()].reduce((s, r) => s + r.us, 0);
const rows = [...byOp].sort((p, q) => q[1].us - p[1].us).slice(0, 16).map(([op, r]) => ({
  op,
  nodes: r.n,
  ms: r.us / 1000,
  share: r.us / total,
}));
printTable(rows);
console.log(
  `forward ${forwardMs.toFixed(0)} ms, prefix ${prefixMs.toFixed(0)} ms, KL session ${
    klMs.toFixed(0)
  } ms: ` +
    `(prefix + KL) / forward = ${((prefixMs + klMs) / forwardMs).toFixed(3)}`,
);
await writeJson("profile_kl", { B, T, forwardMs, prefixMs, klMs, ops: rows });
