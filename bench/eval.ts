// CE-eval throughput on the embedded default: 64 × 128 tokens of held-out Brown text, TopK SAE
// (n=2048, k=16) on the GPU adapter, LM on the EP the service would choose. Prints a table and
// writes bench/out/eval.json.
import { acquireGpu } from "../gpu/device.ts";
import { decodeModel } from "../lm/onnx.ts";
import { ceEval, createEvalSessions } from "../eval/ce_eval.ts";
import { initSae } from "../sae/init.ts";
import { TopKGpuTrainer } from "../sae/topk_trainer.ts";
import { loadBrown } from "../data/brown.ts";
import { packSequences, SequenceBatches } from "../data/sequences.ts";
import { byteTokenizer } from "../data/tokenizer.ts";
import { chooseEp } from "../jobs/finetune_job.ts";
import { printTable, writeJson } from "./_report.ts";

const HOOK = "/blocks.1/Add_2_output_0";
const gpu = await acquireGpu({ log: false });
const model = decodeModel(
  await Deno.readFile(new URL("../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);
const ep = await chooseEp("auto");
const B = 8, T = 128, batches = 8;
const val = new SequenceBatches(
  packSequences([byteTokenizer.encode((await loadBrown()).validation)], T),
  B,
  0,
  false,
);
const data = Array.from({ length: batches }, () => val.next());
const sae = initSae({ kind: "topk", dIn: 128, dSae: 2048, k: 16 }, { seed: 0 });
const trainer = new TopKGpuTrainer(gpu, sae, {
  weightDecay: 0,
  gradClip: 1,
  decoderConstraint: false,
});
const sessions = await createEvalSessions(
  model,
  HOOK,
  ep,
  ep === "webgpu" ? gpu.device : undefined,
);
let saeMs = 0;
const run = async () =>
  await ceEval({
    model,
    hook: HOOK,
    ep,
    batches: data,
    batchSize: B,
    seqLen: T,
    sae: {
      dIn: 128,
      reconstruct: async (x, n) => {
        const t = performance.now();
        const f = await trainer.forward(x, n);
        saeMs += performance.now() - t;
        return { xhat: f.xhat, l0: f.l0 };
      },
    },
  }, sessions);
await run(); // warm-up: pipelines and sessions
saeMs = 0;
const t0 = performance.now();
const r = await run();
const ms = performance.now() - t0;
const tokens = B * T * batches;
const rows = [{
  adapter: gpu.info.description,
  ep,
  tokens,
  seconds: ms / 1000,
  tokens_per_s: tokens / (ms / 1000),
  sae_share: saeMs / ms,
  ce_clean: r.ceClean,
}];
printTable(rows);
console.log(
  `wrote ${await writeJson("eval", {
    rows,
    note: "one tap forward + three suffix forwards per batch; SAE dense on the GPU adapter",
  })}`,
);
console.log(`eval_tokens_per_s ${(tokens / (ms / 1000)).toFixed(1)}`);
trainer.release();
await sessions.release();
