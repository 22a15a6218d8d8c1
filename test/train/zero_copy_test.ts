// On the WebGPU EP the fine-tune keeps x, x̂ and ∂KL/∂x̂ on the GPU (ONNX Runtime on our
// GPUDevice, train/splice_lm.ts): two kl_mse steps that way end with the same SAE and the same
// metrics as the host path (wasm EP), skipped positions included; the trainer is fed GPU buffers.
import { assert, assertEquals } from "@std/assert";
import { loadModel } from "../../lm/onnx.ts";
import { initSae } from "../../sae/init.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import { runFinetune, type StepMetrics } from "../../train/finetune.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, relError } from "../util/rand.ts";

const model = await loadModel(
  new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
);
const HOOK = "/blocks.1/Add_2_output_0", B = 2, T = 16, V = 256;

Deno.test({
  name: "zero-copy WebGPU steps equal the host path (x, x̂, ∂KL/∂x̂ stay GPU buffers)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const gpu = await testGpu();
    const rng = freshRng("zero-copy");
    const batches = Array.from(
      { length: 2 },
      () => BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V))),
    );
    const sae = initSae({ kind: "topk", dIn: 128, dSae: 256, k: 8 }, { seed: rng.int(1e6) });
    const run = async (ep: "webgpu" | "wasm") => {
      const t = new TopKGpuTrainer(gpu, sae, {
        weightDecay: 0.01,
        gradClip: 1,
        decoderConstraint: false,
      });
      let gpuCalls = 0;
      const forwardGpu = t.forwardGpu.bind(t);
      t.forwardGpu = (x, n, inf) => (gpuCalls++, forwardGpu(x, n, inf));
      const metrics: StepMetrics[] = [];
      let i = 0;
      try {
        await runFinetune({
          objective: "kl_mse",
          model,
          hook: HOOK,
          ep,
          device: ep === "webgpu" ? gpu.device : undefined,
          sae: t,
          data: { next: () => batches[i++], cursor: 0, seek: () => {} },
          batchSize: B,
          seqLen: T,
          steps: 2,
          schedule: { lr: 1e-3 },
          skipFirstPositions: 2,
          metricsEvery: 1,
          onMetrics: (m) => void metrics.push(m),
        });
        return { sae: await t.toSae(), metrics, gpuCalls };
      } finally {
        t.release();
      }
    };
    const onGpu = await run("webgpu"), onHost = await run("wasm");
    assertEquals(onGpu.gpuCalls, 2, "the trainer read the LM's GPU buffers");
    assertEquals(onHost.gpuCalls, 0);
    for (const k of ["kl", "mse", "fvu", "l0"] as const) {
      for (let s = 0; s < 2; s++) {
        const a = onGpu.metrics[s][k] as number, b = onHost.metrics[s][k] as number;
        assert(Math.abs(a - b) <= 2e-4 * Math.abs(b) + 1e-7, `step ${s + 1} ${k}: ${a} vs ${b}`);
      }
    }
    for (const name of ["W_enc", "W_dec", "b_enc", "b_dec"] as const) {
      const e = relError(onGpu.sae.weights[name], onHost.sae.weights[name]);
      assert(e <= 1e-4, `${name}: relative error ${e}`);
    }
  },
});
