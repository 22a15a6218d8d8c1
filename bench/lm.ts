// The LM cost of one KL fine-tune step on tiny-neox, 8×128 tokens: tap forward (clean logits,
// log-probs, hook tensor) + suffix forward + suffix backward (∂ mean KL / ∂ hook), as a multiple
// of one plain forward, on the wasm and WebGPU EPs. The floor is ≈ 3 when the hook is near the
// input (backward ≈ 2× forward); later hooks leave a shorter suffix.
import { decodeModel, encodeModel, type ModelProto } from "../lm/onnx.ts";
import { createSession, type ExecutionProvider, type LmSession, ort } from "../lm/session.ts";
import { klStepModel, suffixWithLosses, tapModel } from "../lm/splice_grad.ts";
import { acquireGpu } from "../gpu/device.ts";
import { printTable, writeJson } from "./_report.ts";

const B = 8, T = 128, REPS = Number(Deno.env.get("BENCH_REPS") ?? 5);
// The fixture's hook (block 1) and the costliest one (block 0: the suffix is 3 of 4 blocks).
const HOOKS = (Deno.env.get("BENCH_HOOKS") ?? "0,1").split(",").map(Number);
const model = decodeModel(
  await Deno.readFile(new URL("../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);

const session = (m: ModelProto, ep: ExecutionProvider, device?: GPUDevice): Promise<LmSession> =>
  createSession(encodeModel(m), { ep, device });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const ids = new ort.Tensor(
  "int64",
  BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7919) % 251)),
  [B, T],
);
const gpu = await acquireGpu({ log: false });
const rows: Record<string, string | number>[] = [];
for (const ep of ["wasm", "webgpu"] as ExecutionProvider[]) {
  const device = ep === "webgpu" ? gpu.device : undefined;
  // Every timed call, in a round-robin so that load from other processes hits all alike.
  const jobs: { key: string; run: () => Promise<unknown>; times: number[] }[] = [];
  const full = await session(model, ep, device);
  jobs.push({ key: "full", run: () => full.run({ input_ids: ids }), times: [] });
  const sessions: LmSession[] = [full];
  for (const layer of HOOKS) {
    const hook = `/blocks.${layer}/Add_2_output_0`;
    const tap = await session(tapModel(model, hook), ep, device);
    const fwd = await session(suffixWithLosses(model, hook), ep, device);
    const step = await session(klStepModel(model, hook), ep, device);
    sessions.push(tap, fwd, step);
    const tapOut = await tap.run({ input_ids: ids });
    const feeds = { hook: tapOut[hook], logprobs_clean: tapOut["logprobs_clean"], labels: ids };
    jobs.push({ key: `tap${layer}`, run: () => tap.run({ input_ids: ids }), times: [] });
    jobs.push({ key: `fwd${layer}`, run: () => fwd.run(feeds), times: [] });
    jobs.push({ key: `step${layer}`, run: () => step.run(feeds), times: [] });
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
    const [tap, fwd, step] = [t(`tap${layer}`), t(`fwd${layer}`), t(`step${layer}`)];
    rows.push({
      ep,
      hook_block: layer,
      full_fwd_ms: t("full"),
      tap_fwd_ms: tap,
      suffix_fwd_ms: fwd,
      suffix_fwd_bwd_ms: step,
      backward_ms: step - fwd,
      bwd_over_suffix_fwd: (step - fwd) / fwd,
      kl_step_over_fwd: (tap + step) / t("full"),
    });
  }
}
console.log(
  `tiny-neox, ${B}×${T} tokens, hook /blocks.<hook_block>/Add_2_output_0, median of ${REPS}, ` +
    `adapter: ${gpu.info.description}`,
);
printTable(rows);
console.log(
  "kl_step = tap forward + suffix forward + suffix backward. The suffix holds only the blocks after\n" +
    "the hook (plus ln_f, unembedding and the KL head), so kl_step/fwd ≈ tap/fwd + f·(1 + bwd/fwd)\n" +
    "with f the suffix's share of a forward.",
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
