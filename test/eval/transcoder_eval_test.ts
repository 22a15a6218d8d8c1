// CE-eval of a transcoder (eval/ce_eval.ts with `transcoder`) on tiny-neox: the reconstructor gets
// the MLP's input and output; ŷ = y gives the clean CE, KL 0 and FVU 0; zero- and mean-ablation
// and a perturbed ŷ give the CE of the LM run with the MLP's output replaced, computed here
// independently through the suffix cut at the MLP output and a float64 log-softmax.
import { assert, assertEquals, assertLess } from "@std/assert";
import { ceEval, createEvalSessions } from "../../eval/ce_eval.ts";
import { loadLm } from "../../lm/load.ts";
import { createSession, ort } from "../../lm/session.ts";
import { feedsFor } from "../../lm/signature.ts";
import { suffix } from "../../lm/surgery.ts";
import { resolveTranscoderHooks, transcoderPrefix } from "../../lm/transcoder_graphs.ts";
import { freshRng } from "../util/rand.ts";

const { model } = await loadLm(
  new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
);
const B = 2, T = 12, D = 128, V = 256;

Deno.test({
  name: "transcoder CE-eval: the MLP output replaced, against the suffix at the MLP output",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("transcoder-eval");
    const pair = resolveTranscoderHooks(model, "mlp:0", undefined);
    const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const lmIn = { ids, batch: B, seq: T };
    const pre = await createSession(transcoderPrefix(model, pair), { ep: "cpu" });
    const atOut = await createSession(suffix(model, pair.output), { ep: "cpu" });
    try {
      const out = await pre.run(feedsFor(pre.inputNames, {}, lmIn));
      const xIn = out[pair.input].data as Float32Array, y = out[pair.output].data as Float32Array;
      // Mean CE over positions 0..T−2 of the LM with the MLP's output replaced by `mlp`.
      const ceWith = async (mlp: Float32Array) => {
        const o = await atOut.run(feedsFor(atOut.inputNames, {
          [atOut.inputNames[0]]: new ort.Tensor("float32", mlp, [B, T, D]),
        }, lmIn));
        const logits = o[atOut.outputNames[0]].data as Float32Array;
        let s = 0, n = 0;
        for (let b = 0; b < B; b++) {
          for (let t = 0; t < T - 1; t++) {
            const row = logits.subarray((b * T + t) * V, (b * T + t + 1) * V);
            let mx = -Infinity;
            for (const v of row) mx = Math.max(mx, v);
            let z = 0;
            for (const v of row) z += Math.exp(v - mx);
            s += mx + Math.log(z) - row[Number(ids[b * T + t + 1])];
            n++;
          }
        }
        return s / n;
      };
      const perturbed = y.map((v, i) => v + 0.3 * Math.sin(i) * (Math.abs(v) + 0.05));
      const mean = new Float32Array(D);
      for (let e = 0; e < y.length; e++) mean[e % D] += y[e] / (B * T);
      const run = (yhat: Float32Array) =>
        ceEval({
          model,
          hook: "ignored for transcoders",
          ep: "cpu",
          batches: [ids],
          batchSize: B,
          seqLen: T,
          transcoder: pair,
          sae: {
            dIn: D,
            reconstruct: (x, n, target) => {
              assertEquals(n, B * T);
              assertEquals(x, xIn, "the reconstructor reads the MLP's input");
              assertEquals(target, y, "and is given its output");
              return Promise.resolve({ xhat: yhat, l0: 3 });
            },
          },
        });
      const exact = await run(y);
      assertLess(Math.abs(exact.ceSpliced - exact.ceClean), 1e-5);
      assertLess(exact.kl, 1e-6);
      assertEquals(exact.recon.fvu, 0);
      assertEquals(exact.recon.l0, 3);
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
      assertLess(rel(exact.ceClean, await ceWith(y)), 1e-5, "clean CE");
      assertLess(rel(exact.ceZeroAblation, await ceWith(new Float32Array(y.length))), 1e-5);
      const meanY = Float32Array.from(y, (_, e) => mean[e % D]);
      assertLess(rel(exact.ceMeanAblation, await ceWith(meanY)), 1e-5);
      const off = await run(perturbed);
      assertLess(rel(off.ceSpliced, await ceWith(perturbed)), 1e-5, "spliced CE");
      assert(off.kl > 0 && off.recon.fvu > 0);
      // Sessions made by the caller (as the experiment's arms do) with the hook at the MLP's
      // input: the splice is still at the block's output.
      const sessions = await createEvalSessions(
        model,
        pair.input,
        "cpu",
        undefined,
        model,
        undefined,
        pair,
      );
      try {
        const own = await ceEval({
          model,
          hook: pair.input,
          ep: "cpu",
          batches: [ids],
          batchSize: B,
          seqLen: T,
          transcoder: pair,
          sae: { dIn: D, reconstruct: () => Promise.resolve({ xhat: perturbed }) },
        }, sessions);
        assertLess(rel(own.ceSpliced, off.ceSpliced), 1e-6);
        assertLess(rel(own.ceZeroAblation, exact.ceZeroAblation), 1e-6);
      } finally {
        await sessions.release();
      }
    } finally {
      await pre.release();
      await atOut.release();
    }
  },
});
