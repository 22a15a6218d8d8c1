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

Deno.test("sae_device auto: cpu for a plain topk SAE on a software adapter, else webgpu", () => {
  assertEquals(chooseSaeDevice("auto", software, { kind: "topk" }), "cpu");
  assertEquals(chooseSaeDevice("auto", hardware, { kind: "topk" }), "webgpu");
  for (const kind of ["relu", "batchtopk", "jumprelu"] as const) {
    assertEquals(chooseSaeDevice("auto", software, { kind }), "webgpu", kind);
  }
  const transcoder = { kind: "topk" as const, transcoder: { skip: false } };
  assertEquals(chooseSaeDevice("auto", software, transcoder), "webgpu");
  assertEquals(chooseSaeDevice("webgpu", software, { kind: "topk" }), "webgpu");
  assertEquals(chooseSaeDevice("cpu", hardware, { kind: "topk" }), "cpu");
});

Deno.test("sae_device cpu: an SAE it does not train is an error naming what it trains", () => {
  assertThrows(
    () => chooseSaeDevice("cpu", software, { kind: "jumprelu" }),
    SaeDeviceError,
    'sae_device "cpu" trains topk (an SAE, not a transcoder), not a jumprelu SAE',
  );
  assertThrows(
    () => chooseSaeDevice("cpu", software, { kind: "topk", transcoder: { skip: true } }),
    SaeDeviceError,
    "not a topk transcoder",
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
