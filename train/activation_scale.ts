// The activation-scaling factor s (E‖s·x‖² = d_in) of a hook, estimated on a few token batches
// through the LM prefix, before training from scratch (SAELens' normalize_activations).
import type { ModelProto } from "../lm/onnx.ts";
import { feedsFor } from "../lm/signature.ts";
import { createSession, type ExecutionProvider } from "../lm/session.ts";
import { prefix } from "../lm/surgery.ts";
import { ScalingEstimator } from "../sae/scaling.ts";
import type { Batches } from "./finetune.ts";

export async function estimateActivationScale(o: {
  model: ModelProto;
  hook: string;
  ep: ExecutionProvider;
  device?: GPUDevice;
  data: Batches;
  batchSize: number;
  seqLen: number;
  batches: number;
}): Promise<number> {
  const s = await createSession(prefix(o.model, o.hook), {
    ep: o.ep,
    device: o.device,
  });
  try {
    let est: ScalingEstimator | null = null;
    for (let b = 0; b < o.batches; b++) {
      const ids = o.data.next();
      const feeds = feedsFor(s.inputNames, {}, { ids, batch: o.batchSize, seq: o.seqLen });
      const h = (await s.run(feeds))[s.outputNames[0]];
      est ??= new ScalingEstimator(Number(h.dims.at(-1)));
      est.add(h.data as Float32Array);
    }
    return est!.factor("mean_squared_norm");
  } finally {
    await s.release();
  }
}
