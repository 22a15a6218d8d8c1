import { assertEquals, assertLess } from "@std/assert";
import { HostAdamW } from "../../../train/adapters/host_adamw.ts";

Deno.test("host AdamW: one clipped step as torch's AdamW computes it", () => {
  const p = { w: Float32Array.of(1, -2) };
  const opt = new HostAdamW(p, { weightDecay: 0.1, clip: 1 });
  const norm = opt.step({ w: Float32Array.of(3, 4) }, 0.01);
  assertEquals(norm, 5);
  // Clipped gradient g = (0.6, 0.8)·(1/(1+2e-7)); after bias correction m̂/√v̂ = sign(g) on step 1.
  assertLess(Math.abs(p.w[0] - (1 * (1 - 0.001) - 0.01 * (1 - 1e-8 / 0.6))), 1e-6);
  assertLess(Math.abs(p.w[1] - (-2 * (1 - 0.001) - 0.01)), 1e-6);
});
