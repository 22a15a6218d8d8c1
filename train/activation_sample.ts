// A sample of a hook's activations [tokens, d_in] through the LM prefix, for data-dependent
// initialisation from scratch (JumpReLU's b_dec and θ).
import type { ModelProto } from "../lm/onnx.ts";
import { feedsFor } from "../lm/signature.ts";
import { createSession, type ExecutionProvider } from "../lm/session.ts";
import { prefix } from "../lm/surgery.ts";
import type { Batches } from "./finetune.ts";

export async function sampleActivations(o: {
  model: ModelProto;
  hook: string;
  ep: ExecutionProvider;
  device?: GPUDevice;
  data: Batches;
  batchSize: number;
  seqLen: number;
  batches: number;
}): Promise<Float32Array> {
  const s = await createSession(prefix(o.model, o.hook), {
    ep: o.ep,
    device: o.device,
  });
  try {
    const parts: Float32Array[] = [];
    for (let b = 0; b < o.batches; b++) {
      const feeds = feedsFor(s.inputNames, {}, {
        ids: o.data.next(),
        batch: o.batchSize,
        seq: o.seqLen,
      });
      parts.push(Float32Array.from((await s.run(feeds))[s.outputNames[0]].data as Float32Array));
    }
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  } finally {
    await s.release();
  }
}
