// The LM cost of one KL fine-tune step on tiny-neox, 8×128 tokens: tap forward (clean logits,
// log-probs, hook tensor) + suffix forward + suffix backward (∂ mean KL / ∂ hook), as a multiple
// of one plain forward, on the wasm and WebGPU EPs. The floor is ≈ 3 (backward ≈ 2× forward).
import { decodeModel, encodeModel, type ModelProto } from "../lm/onnx.ts";
import { createSession, type ExecutionProvider, type LmSession, ort } from "../lm/session.ts";
import { klStepModel, suffixWithLosses, tapModel } from "../lm/splice_grad.ts";
import { acquireGpu } from "../gpu/device.ts";
import { printTable, writeJson } from "./_report.ts";

const B = 8, T = 128, REPS = Number(Deno.env.get("BENCH_REPS") ?? 3);
const HOOK = "/blocks.1/Add_2_output_0";
const model = decodeModel(
  await Deno.readFile(new URL("../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);

async function median(f: () => Promise<unknown>): Promise<number> {
  await f(); // warm-up: shader compilation, allocations
  const ts: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return ts.sort((a, b) => a - b)[Math.floor(ts.length / 2)];
}

async function session(
  m: ModelProto,
  ep: ExecutionProvider,
  device?: GPUDevice,
): Promise<LmSession> {
  return await createSession(encodeModel(m), { ep, device });
}

const ids = new ort.Tensor(
  "int64",
  BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7919) % 251)),
  [B, T],
);
const rows: Record<string, string | number>[] = [];
for (const ep of ["wasm", "webgpu"] as ExecutionProvider[]) {
  const device = ep === "webgpu" ? (await acquireGpu({ log: false })).device : undefined;
  const full = await session(model, ep, device);
  const tap = await session(tapModel(model, HOOK), ep, device);
  const fwd = await session(suffixWithLosses(model, HOOK), ep, device);
  const step = await session(klStepModel(model, HOOK), ep, device);
  const tapOut = await tap.run({ input_ids: ids });
  const hookName = tap.outputNames.find((n) => n !== "logits" && n !== "logprobs_clean")!;
  const feeds = { hook: tapOut[hookName], logprobs_clean: tapOut["logprobs_clean"], labels: ids };
  const tFull = await median(() => full.run({ input_ids: ids }));
  const tTap = await median(() => tap.run({ input_ids: ids }));
  const tFwd = await median(() => fwd.run(feeds));
  const tStep = await median(() => step.run(feeds));
  for (const s of [full, tap, fwd, step]) await s.release();
  rows.push({
    ep,
    full_fwd_ms: tFull,
    tap_fwd_ms: tTap,
    suffix_fwd_ms: tFwd,
    suffix_fwd_bwd_ms: tStep,
    backward_ms: tStep - tFwd,
    kl_step_over_fwd: (tTap + tStep) / tFull,
  });
}
console.log(`tiny-neox, ${B}×${T} tokens, hook ${HOOK}, median of ${REPS}`);
printTable(rows);
const path = await writeJson("lm", { batch: B, seq: T, hook: HOOK, reps: REPS, rows });
console.log(`wrote ${path}`);
