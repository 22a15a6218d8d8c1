// The LM side of a step (train/splice_lm.ts): a batch split into micro-batches gives the whole
// batch's KL and gradient (the micro-batches are weighted by their share of counted positions),
// with skipped positions too; a hook narrower or wider than the SAE is an error naming both.
import { assert, assertRejects } from "@std/assert";
import { loadModel } from "../../lm/onnx.ts";
import { createLmStepSessions, SpliceLm } from "../../train/splice_lm.ts";
import { freshRng, relError } from "../util/rand.ts";

const model = await loadModel(
  new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
);
const HOOK = "/blocks.1/Add_2_output_0", B = 3, T = 12, D = 128, V = 256;

Deno.test("SpliceLm: micro-batches add up to the whole batch's KL and gradient", async () => {
  const rng = freshRng("splice-lm-micro");
  const sessions = await createLmStepSessions(model, HOOK, true, "wasm");
  try {
    const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    for (const skip of [0, 2]) {
      const run = async (microBatch: number) => {
        const lm = await SpliceLm.create(sessions, {
          hook: HOOK,
          width: D,
          batch: B,
          seq: T,
          skipFirstPositions: skip,
          microBatch,
          ep: "wasm",
        });
        const clean = (await lm.activations(ids)).clean as Float32Array;
        const y = clean.map((v, i) => v + 0.3 * Math.sin(i));
        return await lm.kl(clean, y);
      };
      const whole = await run(B), one = await run(1), two = await run(2);
      for (const part of [one, two]) {
        assert(Math.abs(part.kl - whole.kl) <= 1e-5 * whole.kl, `kl ${part.kl} vs ${whole.kl}`);
        // Float32 sums in another order (ORT blocks its products by the batch's shape): seed
        // 1173415781 measured 1.2e-5. A wrong micro-batch weighting is off by whole percents.
        const e = relError(part.grad as Float32Array, whole.grad as Float32Array);
        assert(e <= 5e-5, `skip ${skip}: gradient relative error ${e}`);
      }
      assert(whole.kl > 0, "the perturbed splice has a positive KL");
      if (skip) {
        // Skipped positions get no gradient for the SAE; theirs goes to the clean activations.
        for (let r = 0; r < B * T; r++) {
          const g = (whole.grad as Float32Array).subarray(r * D, (r + 1) * D);
          if (r % T < skip) assert(g.every((v) => v === 0), `row ${r} is skipped`);
        }
        assert(whole.gradClean!.some((v) => v !== 0), "the skipped positions' gradient is kept");
      }
    }
  } finally {
    await sessions.release();
  }
});

Deno.test("SpliceLm: an SAE width that is not the hook's is an error naming both", async () => {
  const sessions = await createLmStepSessions(model, HOOK, false, "wasm");
  try {
    const lm = await SpliceLm.create(sessions, {
      hook: HOOK,
      width: 64,
      batch: 1,
      seq: 4,
      ep: "wasm",
    });
    await assertRejects(() => lm.activations(new BigInt64Array(4)), Error, "64-wide activations");
  } finally {
    await sessions.release();
  }
});
