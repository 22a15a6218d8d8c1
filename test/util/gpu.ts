// One GPU context per test module.
import { acquireGpu, type GpuContext } from "../../gpu/device.ts";

let ctx: Promise<GpuContext> | null = null;

export function testGpu(): Promise<GpuContext> {
  ctx ??= acquireGpu({ log: false });
  return ctx;
}
