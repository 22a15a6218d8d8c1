// The activation-scaling factor s (E‖s·x‖² = d_in) of a hook, estimated on a few token batches
// through the LM prefix, before training from scratch (SAELens' normalize_activations).
import { ScalingEstimator } from "../sae/scaling.ts";
import { sampleActivations } from "./activation_sample.ts";

export async function estimateActivationScale(
  o: Parameters<typeof sampleActivations>[0],
): Promise<number> {
  const x = await sampleActivations(o);
  const est = new ScalingEstimator(x.length / (o.batches * o.batchSize * o.seqLen));
  est.add(x);
  return est.factor("mean_squared_norm");
}
