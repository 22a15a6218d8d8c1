// A transcoder's side of the KL+MSE step. The LM's prefix runs to the block's resid_post and also
// yields the MLP's input x_in and output y (lm/transcoder_graphs.ts); the transcoder reads x_in and
// predicts y; the LM goes on from resid_post − y + ŷ, which is the MLP's output replaced by ŷ, so
// the existing KL graph at resid_post gives ∂KL/∂ŷ as its ∂KL/∂resid_post. MSE and FVU are against y.
import type { ModelProto } from "../lm/onnx.ts";
import type { ExecutionProvider } from "../lm/session.ts";
import { type MlpHookPair, transcoderPrefix } from "../lm/transcoder_graphs.ts";
import type { SaeTrainer } from "../sae/trainer.ts";
import {
  type Act,
  createLmStepSessions,
  hostAct,
  type KlResult,
  type LmStepSessions,
  type SpliceLm,
} from "./splice_lm.ts";
import { varianceOf } from "./variance.ts";

/** The step's sessions: prefix → (resid_post, x_in, y); the KL step at resid_post. */
export function createTranscoderSessions(
  model: ModelProto,
  pair: MlpHookPair,
  needKl: boolean,
  ep: ExecutionProvider,
  device?: GPUDevice,
): Promise<LmStepSessions> {
  const pre = transcoderPrefix(model, pair);
  return createLmStepSessions(model, pair.post, needKl, ep, device, undefined, false, pre);
}

/** Host activations only: the splice resid_post − y + ŷ is formed on the host. */
const host = (a: Act) => hostAct(a, "a transcoder step");

/**
 * The step's trainee (train/finetune.ts StepSae) for a transcoder: forward reads x_in and y from
 * the prefix's last outputs, hands the LM resid_post − y + ŷ; backward takes ∂KL/∂resid_post as
 * ∂KL/∂ŷ. `l1`: the controller's λ at each step (relu, jumprelu).
 */
export function transcoderSide(
  t: SaeTrainer,
  lm: SpliceLm,
  pair: MlpHookPair,
  l1: () => number | undefined,
) {
  return {
    forward: async (a: Act) => {
      const post = host(a);
      const xIn = lm.lastOutputs[pair.input], y = lm.lastOutputs[pair.output];
      if (!xIn || !y) {
        throw new Error(
          `internal: the prefix gave no "${pair.input}" or "${pair.output}" (transcoder sessions?)`,
        );
      }
      const f = await t.forward(xIn, xIn.length / t.dIn, false, y);
      const spliced = new Float32Array(post.length);
      for (let e = 0; e < post.length; e++) spliced[e] = post[e] - y[e] + f.xhat[e];
      return {
        y: spliced as Act,
        mse: f.mse,
        fvu: f.mse / Math.max(varianceOf(y, t.dIn), 1e-30),
        l0: f.l0,
      };
    },
    backwardAndStep: (
      { wMse, wKl, kl, lr }: { wMse: number; wKl: number; kl: KlResult | null; lr: number },
    ) => t.backwardAndStep({ wMse, gExt: kl ? host(kl.grad) : null, wExt: wKl, lr, l1: l1() }),
    state: () => t.state(),
    restore: (s: Map<string, { data: Float32Array; shape: number[] }>) => t.restore(s),
  };
}
