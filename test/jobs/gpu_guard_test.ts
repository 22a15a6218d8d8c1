// A GPU validation error or an all-zero gradient in a job's first step fails the job instead of
// letting it "succeed" with an SAE that never trained.
import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { GpuJobError, guardTrainer } from "../../jobs/gpu_guard.ts";
import type { OwnedTrainer } from "../../sae/trainer.ts";
import { testGpu } from "../util/gpu.ts";
import { startTestService } from "../util/service.ts";
import { readSse } from "../util/sse.ts";

function fakeTrainer(device: GPUDevice, o: { invalid?: boolean; gradNorm?: number }) {
  const t: OwnedTrainer & { steps: number } = {
    dIn: 4,
    steps: 0,
    forward: (x) => Promise.resolve({ xhat: x, mse: 1, l0: 1 }),
    backwardAndStep: () => {
      t.steps++;
      // A storage binding larger than its buffer: what an oversized SAE does to the adapter.
      if (o.invalid) {
        const buf = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
        const layout = device.createBindGroupLayout({
          entries: [{
            binding: 0,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: "storage" },
          }],
        });
        device.createBindGroup({
          layout,
          entries: [{ binding: 0, resource: { buffer: buf, size: 1024 } }],
        });
        buf.destroy();
      }
      return Promise.resolve({ gradNorm: o.gradNorm ?? 1, aux: 0, dead: 0 });
    },
    state: () => Promise.resolve(new Map()),
    restore: () => Promise.resolve(),
    toSae: () => Promise.reject(new Error("unused")),
    release: () => {},
  };
  return t;
}

const step = { wMse: 1, gExt: null, wExt: 0, lr: 1e-3 };

Deno.test("a validation error in the first step is a GpuJobError; later steps are not scoped", async () => {
  const { device } = await testGpu();
  const g = guardTrainer(fakeTrainer(device, { invalid: true }), device, { mustMove: true });
  const e = await assertRejects(() => g.backwardAndStep(step), GpuJobError);
  assertStringIncludes(e.message, "rejected");
  // The scopes were popped: the device's error-scope stack is balanced again.
  device.pushErrorScope("validation");
  assertEquals(await device.popErrorScope(), null);
});

Deno.test("a zero gradient at the first step fails when training must move, not in an eval", async () => {
  const { device } = await testGpu();
  const moving = guardTrainer(fakeTrainer(device, { gradNorm: 0 }), device, { mustMove: true });
  await assertRejects(() => moving.backwardAndStep(step), GpuJobError, "exactly zero");
  const evaluating = guardTrainer(fakeTrainer(device, { gradNorm: 0 }), device, {
    mustMove: false,
  });
  assertEquals((await evaluating.backwardAndStep(step)).gradNorm, 0);
  const healthy = fakeTrainer(device, {});
  const g = guardTrainer(healthy, device, { mustMove: true });
  for (let i = 0; i < 3; i++) assertEquals((await g.backwardAndStep(step)).gradNorm, 1);
  assertEquals(healthy.steps, 3);
});

Deno.test({
  name: "a fine-tune whose SAE the adapter cannot bind fails (it used to succeed untrained)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      const limits = svc.gpu.info.limits;
      const dSae = Math.floor(
        Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize) / (128 * 4),
      ) + 1;
      if (dSae > 1 << 20) {
        return console.log(`this adapter binds SAEs of d_sae ${dSae - 1}: not run here`);
      }
      // Straight to the runner: the route would refuse this job at submit.
      const job = await svc.runner.submit("finetune", {
        kind: "mse",
        tokens: 2 * 2 * 16,
        batch_size: 2,
        seq_len: 16,
        shuffle_buffer_tokens: 0,
        eval_sequences: 0,
        // The GPU trainer: on a software adapter auto would train this TopK SAE on the CPU.
        sae_device: "webgpu",
        init: { kind: "topk", d_sae: dSae, k: 4 },
      });
      const events = await readSse(await fetch(`${svc.url}/finetunes/${job.id}/events`));
      const last = events.at(-1)!.data as { state: string; error?: string };
      assertEquals(last.state, "failed");
      assertStringIncludes(last.error!, "GPU");
    } finally {
      await svc.close();
    }
  },
});
