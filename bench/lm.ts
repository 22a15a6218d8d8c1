// The LM cost of one KL fine-tune step on tiny-neox, 8×128 tokens: the prefix forward (clean
// activations at the hook) + the KL session (lm/step_graphs.ts: clean suffix, spliced suffix, KL
// and its backward to the spliced activations), as a multiple of one plain forward, and the
// forward's tokens/s, on the native runtime's cpu EP (and cuda where it starts) and ONNX Runtime
// Web's wasm and WebGPU EPs (BENCH_EPS=cpu,wasm picks some). With a suffix of share f of a
// forward, the floor is ≈ 1 + f·(1 + bwd/fwd) ≈ 1 + 3f (backward ≈ 2× forward).
import { decodeModel, type ModelProto } from "../lm/onnx.ts";
import {
  createSession,
  type ExecutionProvider,
  type LmSession,
  ort,
  runtimeOf,
  runtimeStatus,
} from "../lm/session.ts";
import { klStepGraph, positionMask } from "../lm/step_graphs.ts";
import { prefix } from "../lm/surgery.ts";
import { acquireGpu } from "../gpu/device.ts";
import { printTable, writeJson } from "./_report.ts";

const B = 8, T = 128, REPS = Number(Deno.env.get("BENCH_REPS") ?? 5);
// The fixture's hook (block 1) and the costliest one (block 0: the suffix is 3 of 4 blocks).
const HOOKS = (Deno.env.get("BENCH_HOOKS") ?? "0,1").split(",").map(Number);
const model = decodeModel(
  await Deno.readFile(new URL("../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);

const session = (m: ModelProto, ep: ExecutionProvider, device?: GPUDevice): Promise<LmSession> =>
  createSession(m, { ep, device });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const ids = new ort.Tensor(
  "int64",
  BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7919) % 251)),
  [B, T],
);
const gpu = await acquireGpu({ log: false });
const EPS = (Deno.env.get("BENCH_EPS")?.split(",") ??
  [
    ...((await runtimeStatus()).eps.cuda.available ? ["cuda"] : []),
    "cpu",
    "wasm",
    "webgpu",
  ]) as ExecutionProvider[];
const rows: Record<string, string | number>[] = [];
for (const ep of EPS) {
  const device = ep === "webgpu" ? gpu.device : undefined;
  // Every timed call, in a round-robin so that load from other processes hits all alike.
  const jobs: { key: string; run: () => Promise<unknown>; times: number[] }[] = [];
  const full = await session(model, ep, device);
  jobs.push({ key: "full", run: () => full.run({ input_ids: ids }), times: [] });
  const sessions: LmSession[] = [full];
  for (const layer of HOOKS) {
    const hook = `/blocks.${layer}/Add_2_output_0`;
    const pre = await session(prefix(model, hook), ep, device);
    const step = await session(klStepGraph(model, hook), ep, device);
    sessions.push(pre, step);
    const x = (await pre.run({ input_ids: ids }))[hook];
    const xd = await x.getData() as Float32Array;
    const feeds = {
      hook_clean: x,
      hook: new ort.Tensor("float32", xd.map((v, i) => v * (1 + 0.05 * Math.sin(i))), x.dims),
      kl_mask: new ort.Tensor("float32", positionMask(B, T), [B, T]),
      input_ids: ids,
    };
    const stepFeeds = Object.fromEntries(step.inputNames.map((n) => [n, feeds[n as "hook"]]));
    jobs.push({ key: `pre${layer}`, run: () => pre.run({ input_ids: ids }), times: [] });
    jobs.push({ key: `step${layer}`, run: () => step.run(stepFeeds), times: [] });
  }
  for (const j of jobs) await j.run(); // warm-up: shader compilation, allocations
  for (let r = 0; r < REPS; r++) {
    for (const j of jobs) {
      const t0 = performance.now();
      await j.run();
      j.times.push(performance.now() - t0);
    }
  }
  for (const s of sessions) await s.release();
  const t = (k: string) => median(jobs.find((j) => j.key === k)!.times);
  for (const layer of HOOKS) {
    const [pre, step] = [t(`pre${layer}`), t(`step${layer}`)];
    rows.push({
      runtime: runtimeOf(ep),
      ep,
      hook_block: layer,
      fwd_tok_s: Math.round(B * T / (t("full") / 1000)),
      full_fwd_ms: t("full"),
      prefix_fwd_ms: pre,
      kl_session_ms: step,
      kl_step_over_fwd: (pre + step) / t("full"),
    });
  }
}
console.log(
  `tiny-neox, ${B}×${T} tokens, hook /blocks.<hook_block>/Add_2_output_0, median of ${REPS}, ` +
    `adapter: ${gpu.info.description}`,
);
printTable(rows);
console.log(
  "kl_step = prefix forward + KL session (clean suffix + spliced suffix + spliced backward). The\n" +
    "suffix holds only the blocks after the hook (plus ln_f, unembedding and the KL head).",
);
const path = await writeJson("lm", {
  batch: B,
  seq: T,
  hooks: HOOKS,
  reps: REPS,
  device: gpu.info.description,
  rows,
});
console.log(`wrote ${path}`);
