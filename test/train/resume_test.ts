// Stopping a fine-tune mid-run and resuming from its last checkpoint gives bit-for-bit the run that
// never stopped: weights, Adam moments, step count and data cursor all come back (real tiny-neox on
// the wasm EP, the sparse TopK trainer on the GPU adapter, Brown batches with a shuffled order).
import { assertEquals } from "@std/assert";
import { loadBrown } from "../../data/brown.ts";
import { packSequences, SequenceBatches } from "../../data/sequences.ts";
import { byteTokenizer } from "../../data/tokenizer.ts";
import { decodeModel } from "../../lm/onnx.ts";
import { initSae } from "../../sae/init.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import { runFinetune } from "../../train/finetune.ts";
import { testGpu } from "../util/gpu.ts";

const HOOK = "/blocks.1/Add_2_output_0", B = 2, T = 16, STEPS = 6;

Deno.test({
  name:
    "a kl_mse run stopped after step 3 and resumed from its step-2 checkpoint equals the uninterrupted run",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const gpu = await testGpu();
    const model = decodeModel(
      await Deno.readFile(new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
    );
    const seqs = packSequences([byteTokenizer.encode((await loadBrown()).validation)], T);
    const sae = initSae({ kind: "topk", dIn: 128, dSae: 256, k: 8 }, { seed: 3 });
    const opts = { weightDecay: 0.01, gradClip: 1, decoderConstraint: false };
    const run = async (dir: string, stopAfter?: number) => {
      const trainer = new TopKGpuTrainer(gpu, sae, opts);
      const ctl = new AbortController();
      try {
        await runFinetune({
          objective: "kl_mse",
          model,
          hook: HOOK,
          ep: "wasm",
          sae: trainer,
          data: new SequenceBatches(seqs, B, 7, true),
          batchSize: B,
          seqLen: T,
          steps: STEPS,
          schedule: { lr: 1e-3, decayFraction: 0.5 },
          metricsEvery: 1,
          checkpointEvery: 2,
          checkpointDir: dir,
          signal: ctl.signal,
          onMetrics: (m) => {
            if (m.step === stopAfter) ctl.abort(new Error("stopped"));
          },
        });
      } catch (e) {
        if ((e as Error).message !== "stopped") throw e;
      }
      const state = await trainer.state();
      trainer.release();
      return state;
    };
    const [a, b] = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    try {
      const straight = await run(a);
      const stopped = await run(b, 3);
      assertEquals(stopped.get("adam.t")!.data[0], 3, "the stopped run took 3 steps");
      const resumed = await run(b);
      assertEquals([...resumed.keys()].sort(), [...straight.keys()].sort());
      for (const [name, t] of straight) assertEquals(resumed.get(name)!.data, t.data, name);
    } finally {
      await Deno.remove(a, { recursive: true });
      await Deno.remove(b, { recursive: true });
    }
  },
});
