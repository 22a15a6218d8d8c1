// The MSE phase on shuffled activations (real tiny-neox prefix, Brown batches): each fill serves
// every collected token exactly once in a shuffled order; several SAEs see the same batches (one
// trained alone ends where it ends when trained beside another); a run stopped mid-fill and resumed
// from its checkpoint equals the unbroken run bit for bit.
import { assert, assertEquals, assertNotEquals } from "@std/assert";
import { loadBrown } from "../../data/brown.ts";
import { packSequences, SequenceBatches } from "../../data/sequences.ts";
import { byteTokenizer } from "../../data/tokenizer.ts";
import { decodeModel, encodeModel } from "../../lm/onnx.ts";
import { createSession, ort } from "../../lm/session.ts";
import { prefix } from "../../lm/surgery.ts";
import { initSae } from "../../sae/init.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import type { SaeTrainer } from "../../train/finetune.ts";
import { runMsePhase } from "../../train/mse_phase.ts";
import { testGpu } from "../util/gpu.ts";

const HOOK = "/blocks.1/Add_2_output_0", B = 2, T = 16, D = 128;
const model = decodeModel(
  await Deno.readFile(new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);
const seqs = packSequences([byteTokenizer.encode((await loadBrown()).validation)], T);
const base = {
  model,
  hook: HOOK,
  ep: "wasm" as const,
  seqBatch: B,
  seqLen: T,
  stepTokens: 24,
  bufferTokens: 3 * B * T, // 96 tokens: 4 steps a fill
  seed: 5,
  schedule: { lr: 1e-3 },
};

Deno.test({
  name: "MSE phase: each fill serves every token once, shuffled; several SAEs see the same rows",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const seen: Float32Array[][] = [[], []];
    const recorder = (i: number): SaeTrainer => ({
      dIn: D,
      forward: (x) => {
        seen[i].push(x.slice());
        return Promise.resolve({ xhat: x, mse: 0, l0: 0 });
      },
      backwardAndStep: () => Promise.resolve({ gradNorm: 0, aux: 0, dead: 0 }),
      state: () => Promise.resolve(new Map()),
      restore: () => Promise.resolve(),
    });
    await runMsePhase({
      ...base,
      saes: [recorder(0), recorder(1)],
      data: new SequenceBatches(seqs, B, 3, true),
      steps: 4,
    });
    assertEquals(seen[0], seen[1], "both SAEs got the same batches");
    // The first fill is the prefix's activations of the first three token batches.
    const data = new SequenceBatches(seqs, B, 3, true);
    const s = await createSession(encodeModel(prefix(model, HOOK)), { ep: "wasm" });
    const rows: string[] = [];
    for (let b = 0; b < 3; b++) {
      const out = await s.run({ [s.inputNames[0]]: new ort.Tensor("int64", data.next(), [B, T]) });
      const h = out[s.outputNames[0]].data as Float32Array;
      for (let r = 0; r < B * T; r++) rows.push(h.subarray(r * D, (r + 1) * D).join(","));
    }
    await s.release();
    const served = seen[0].flatMap((x) =>
      Array.from({ length: x.length / D }, (_, r) => x.subarray(r * D, (r + 1) * D).join(","))
    );
    assertEquals(served.length, 96);
    assertEquals([...served].sort(), [...rows].sort(), "every token of the fill once");
    assertNotEquals(served, rows, "in a shuffled order");
  },
});

Deno.test({
  name:
    "MSE phase: trained beside another SAE or alone, an SAE ends the same; resume equals unbroken",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const gpu = await testGpu();
    const opts = { weightDecay: 0, gradClip: 1, decoderConstraint: false };
    const a = initSae({ kind: "topk", dIn: D, dSae: 128, k: 8 }, { seed: 1 });
    const b = initSae({ kind: "topk", dIn: D, dSae: 64, k: 4 }, { seed: 2 });
    const run = async (withOther: boolean, dir?: string, stopAfter?: number) => {
      const ta = new TopKGpuTrainer(gpu, a, opts);
      const tb = withOther ? new TopKGpuTrainer(gpu, b, opts) : null;
      const ctl = new AbortController();
      try {
        await runMsePhase({
          ...base,
          saes: tb ? [ta, tb] : [ta],
          data: new SequenceBatches(seqs, B, 3, true),
          steps: 10,
          checkpointDir: dir,
          checkpointEvery: 3,
          metricsEvery: 1,
          signal: ctl.signal,
          onMetrics: (m, i) => {
            if (i === 0 && m.step === stopAfter) ctl.abort(new Error("stopped"));
          },
        });
      } catch (e) {
        if ((e as Error).message !== "stopped") throw e;
      }
      const s = await ta.state();
      ta.release();
      tb?.release();
      return s;
    };
    const alone = await run(false), paired = await run(true);
    for (const [k, v] of alone) assertEquals(paired.get(k)!.data, v.data, `paired ${k}`);
    const dir = await Deno.makeTempDir();
    try {
      await run(false, dir, 5); // checkpoint at step 3, mid second fill; stopped after step 5
      const resumed = await run(false, dir);
      for (const [k, v] of alone) assertEquals(resumed.get(k)!.data, v.data, `resumed ${k}`);
      assert(alone.get("adam.t")!.data[0] === 10);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
