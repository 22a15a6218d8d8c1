// One GPU context per test module.
import { poison } from "../../gpu/buffers.ts";
import { acquireGpu, type GpuContext } from "../../gpu/device.ts";

let ctx: Promise<GpuContext> | null = null;

export function testGpu(): Promise<GpuContext> {
  ctx ??= acquireGpu({ log: false });
  return ctx;
}

/** NaN-fills every buffer of a trainer's gradients, so a kernel that skips an element shows. */
export function poisonAll(device: GPUDevice, bufs: Record<string, GPUBuffer | undefined>): void {
  for (const b of Object.values(bufs)) if (b) poison(device, b);
}
