// sae_device: what "auto" picks on software and hardware adapters, the refusal of "cpu" for what
// the CPU trainer does not train, and the factory building the trainer the device names.
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { CpuTopKTrainer } from "../../sae/cpu_topk_trainer.ts";
import { chooseSaeDevice, createTrainer, SaeDeviceError } from "../../sae/sae_device.ts";
import { TopKGpuTrainer } from "../../sae/topk_trainer.ts";
import { createSaeTrainer } from "../../sae/trainers.ts";
import type { Sae } from "../../sae/types.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

const software = { isSoftware: true }, hardware = { isSoftware: false };
const native = { available: true };
const noNative = { available: false, reason: "onnxruntime-node failed to load: no addon" };

Deno.test("sae_device auto: cpu for a plain topk SAE on a software adapter, else webgpu", () => {
  assertEquals(chooseSaeDevice("auto", software, { kind: "topk" }, native), "cpu");
  assertEquals(chooseSaeDevice("auto", hardware, { kind: "topk" }, native), "webgpu");
  for (const kind of ["relu", "batchtopk", "jumprelu"] as const) {
    assertEquals(chooseSaeDevice("auto", software, { kind }, native), "webgpu", kind);
  }
  const transcoder = { kind: "topk" as const, transcoder: { skip: false } };
  assertEquals(chooseSaeDevice("auto", software, transcoder, native), "webgpu");
  assertEquals(chooseSaeDevice("webgpu", software, { kind: "topk" }, native), "webgpu");
  assertEquals(chooseSaeDevice("cpu", hardware, { kind: "topk" }, native), "cpu");
  // The CPU trainer runs on the native runtime: where it did not load, auto stays on webgpu.
  assertEquals(chooseSaeDevice("auto", software, { kind: "topk" }, noNative), "webgpu");
});

Deno.test("sae_device cpu: an SAE it does not train is an error naming what it trains", () => {
  assertThrows(
    () => chooseSaeDevice("cpu", software, { kind: "jumprelu" }, native),
    SaeDeviceError,
    'sae_device "cpu" trains topk (an SAE, not a transcoder), not a jumprelu SAE',
  );
  assertThrows(
    () => chooseSaeDevice("cpu", software, { kind: "topk", transcoder: { skip: true } }, native),
    SaeDeviceError,
    "not a topk transcoder",
  );
  assertThrows(
    () => chooseSaeDevice("cpu", software, { kind: "topk" }, noNative),
    SaeDeviceError,
    'sae_device "cpu" runs on the native ONNX Runtime (onnxruntime-node), which did not load ' +
      "here (onnxruntime-node failed to load: no addon)",
  );
});

Deno.test("createTrainer builds the trainer its saeDevice names; the GPU factory refuses cpu", async () => {
  const gpu = await testGpu();
  const rng = freshRng("sae-device-factory");
  const d = 8, m = 32;
  const sae: Sae = {
    cfg: { kind: "topk", dIn: d, dSae: m, k: 4 },
    weights: {
      W_enc: rng.normals(d * m),
      b_enc: rng.normals(m),
      W_dec: rng.normals(m * d),
      b_dec: rng.normals(d),
    },
  };
  const opts = { weightDecay: 0, gradClip: 1, decoderConstraint: false };
  for (const [saeDevice, type] of [["cpu", CpuTopKTrainer], ["webgpu", TopKGpuTrainer]] as const) {
    const t = await createTrainer(gpu, sae, { ...opts, saeDevice });
    try {
      assert(t instanceof type, `${saeDevice}: ${t.constructor.name}`);
    } finally {
      t.release();
    }
  }
  await assertRejects(
    () => createSaeTrainer(gpu, sae, { ...opts, saeDevice: "cpu" }),
    Error,
    'for sae_device "cpu"',
  );
});
