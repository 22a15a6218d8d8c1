// The MSE phase of a transcoder (train/mse_phase.ts with `transcoder`): the buffer holds (x_in, y)
// pairs of the MLP and shuffles them together, so every row a step hands the trainer comes with its
// own token's MLP output as the target, and a fill serves each token once.
import { assert, assertEquals } from "@std/assert";
import { loadBrown } from "../../data/brown.ts";
import { packSequences, SequenceBatches } from "../../data/sequences.ts";
import { byteTokenizer } from "../../data/tokenizer.ts";
import { loadLm } from "../../lm/load.ts";
import { createSession } from "../../lm/session.ts";
import { feedsFor } from "../../lm/signature.ts";
import { resolveTranscoderHooks, transcoderPrefix } from "../../lm/transcoder_graphs.ts";
import type { SaeTrainer } from "../../train/finetune.ts";
import { runMsePhase } from "../../train/mse_phase.ts";

const B = 2, T = 16, D = 128;
const { model } = await loadLm(
  new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
);
const seqs = packSequences([byteTokenizer.encode((await loadBrown()).validation)], T);

Deno.test({
  name: "transcoder MSE phase: shuffled rows keep their own MLP output as the target",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const pair = resolveTranscoderHooks(model, "mlp:1", undefined);
    // The reference: (x_in, y) of the fill's tokens, in order.
    const ref = new SequenceBatches(seqs, B, 3, true);
    const pre = await createSession(transcoderPrefix(model, pair), { ep: "cpu" });
    // Rows can repeat (a token at position 0 of two sequences): counted.
    const want = new Map<string, { y: Float32Array; left: number; at: number }>();
    try {
      for (let b = 0; b < 3; b++) {
        const out = await pre.run(
          feedsFor(pre.inputNames, {}, { ids: ref.next(), batch: B, seq: T }),
        );
        const x = out[pair.input].data as Float32Array, y = out[pair.output].data as Float32Array;
        for (let r = 0; r < B * T; r++) {
          const key = x.subarray(r * D, (r + 1) * D).join();
          const have = want.get(key);
          if (have) have.left++;
          else want.set(key, { y: y.slice(r * D, (r + 1) * D), left: 1, at: want.size });
        }
      }
    } finally {
      await pre.release();
    }
    const seen: number[] = [];
    const fake: SaeTrainer = {
      dIn: D,
      forward: (x, n, _inference, target) => {
        assert(target, "the MSE phase gives a transcoder its target");
        for (let r = 0; r < n; r++) {
          const key = x.subarray(r * D, (r + 1) * D).join();
          const w = want.get(key);
          assert(w && w.left > 0, "every row is one of the fill's MLP inputs, served once");
          assertEquals(target.subarray(r * D, (r + 1) * D), w.y, "with its own MLP output");
          w.left--;
          seen.push(w.at);
        }
        return Promise.resolve({ xhat: target.slice(), mse: 0, l0: 1 });
      },
      backwardAndStep: () => Promise.resolve({ gradNorm: 1, aux: 0, dead: 0 }),
      state: () => Promise.resolve(new Map()),
      restore: () => Promise.resolve(),
    };
    await runMsePhase({
      model,
      hook: "ignored for transcoders",
      ep: "cpu",
      saes: [fake],
      data: new SequenceBatches(seqs, B, 3, true),
      seqBatch: B,
      seqLen: T,
      stepTokens: 24,
      bufferTokens: 3 * B * T,
      seed: 5,
      steps: 4,
      schedule: { lr: 1e-3 },
      transcoder: pair,
    });
    assertEquals(seen.length, 4 * 24);
    assert([...want.values()].every((w) => w.left === 0), "a fill serves each token once");
    assert(seen.some((at, i) => i > 0 && at < seen[i - 1]), "rows are shuffled");
  },
});
