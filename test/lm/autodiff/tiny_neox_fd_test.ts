// The real torch.onnx export (tiny-neox): the suffix after a hook with the KL and CE heads, its
// gradient graph evaluated in float64 by the reference evaluator, against float64 finite
// differences of the same suffix (every hook layer, fresh random splice and labels each run).
import { decodeModel } from "../../../lm/onnx.ts";
import { DataType } from "../../../lm/onnx.ts";
import { suffixGradModel, suffixWithLosses } from "../../../lm/splice_grad.ts";
import { type Feeds, finiteDifferenceError } from "../../util/gradcheck.ts";
import { runReference } from "../../util/onnx_interp.ts";
import { freshRng } from "../../util/rand.ts";
import { assert } from "@std/assert";

const model = decodeModel(
  await Deno.readFile(new URL("../../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);

Deno.test("tiny-neox suffix gradients (KL and CE) match float64 finite differences", async (t) => {
  const rng = freshRng("tiny-neox fd");
  const B = 1, T = 6, D = 128, V = 256;
  for (const layer of [0, 2]) {
    await t.step(`hook after block ${layer}`, () => {
      const hook = `/blocks.${layer}/Add_2_output_0`;
      const fwd = suffixWithLosses(model, hook);
      const grad = suffixGradModel(model, hook);
      const lp = new Float64Array(B * T * V);
      for (let r = 0; r < B * T; r++) {
        const z = rng.normals64(V, 2);
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
        for (let v = 0; v < V; v++) lp[r * V + v] = z[v] - lse;
      }
      const feeds: Feeds = {
        hook: { dtype: DataType.FLOAT, dims: [B, T, D], data: rng.normals64(B * T * D, 1.5) },
        logprobs_clean: { dtype: DataType.FLOAT, dims: [B, T, V], data: lp },
        labels: {
          dtype: DataType.INT64,
          dims: [B, T],
          data: Float64Array.from({ length: B * T }, () => rng.int(V)),
        },
      };
      const out = runReference(grad, feeds, ["grad_kl_hook", "grad_ce_hook"]);
      for (const [loss, g] of [["kl_mean", "grad_kl_hook"], ["ce_mean", "grad_ce_hook"]]) {
        const { err, fdNorm } = finiteDifferenceError(fwd, loss, feeds, "hook", out[g].data!, rng, {
          samples: 24,
        });
        assert(fdNorm > 1e-6, `${loss}: finite differences are ~0`);
        assert(err <= 1e-6, `block ${layer} ${loss}: scaled error ${err}`);
      }
    });
  }
});
