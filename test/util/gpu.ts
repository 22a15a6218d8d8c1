// One GPU context per test module.
import { assertThrows } from "@std/assert";
import { poison } from "../../gpu/buffers.ts";
import { acquireGpu, type GpuContext } from "../../gpu/device.ts";
import { type Rec, submitPass, UniformArena } from "../../gpu/kernel.ts";

let ctx: Promise<GpuContext> | null = null;

export function testGpu(): Promise<GpuContext> {
  ctx ??= acquireGpu({ log: false });
  return ctx;
}

/** NaN-fills every buffer of a trainer's gradients, so a kernel that skips an element shows. */
export function poisonAll(device: GPUDevice, bufs: Record<string, GPUBuffer | undefined>): void {
  for (const b of Object.values(bufs)) if (b) poison(device, b);
}

/** Recording `record` into a pass is refused by a kernel's guard: a RangeError naming `msg`. */
export function assertPassRefused(
  device: GPUDevice,
  record: (r: Rec) => void,
  msg: string,
): void {
  const uniforms = new UniformArena(device, "refused");
  try {
    assertThrows(() => submitPass(device, uniforms, "bad", record), RangeError, msg);
  } finally {
    uniforms.destroy();
  }
}
