import { assert, assertEquals } from "@std/assert";
import { createBuffer } from "../../gpu/buffers.ts";
import { pipelineCache } from "../../gpu/pipelines.ts";
import { PassTimer, timeGpu } from "../../gpu/timing.ts";
import { testGpu } from "../util/gpu.ts";

const BUSY = `
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var s = f32(g.x);
  for (var i = 0u; i < 2000u; i++) { s = sin(s) + 1.0; }
  x[g.x] = s;
}`;

Deno.test("timestamp queries time a compute pass; wall-clock timing always works", async () => {
  const { device, hasTimestamps } = await testGpu();
  const buf = createBuffer(device, 64 * 64 * 4);
  const pipeline = pipelineCache(device).get(BUSY);
  const bg = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: buf } }],
  });
  const record = (desc?: GPUComputePassDescriptor) => {
    const enc = device.createCommandEncoder();
    const p = enc.beginComputePass(desc);
    p.setPipeline(pipeline);
    p.setBindGroup(0, bg);
    p.dispatchWorkgroups(64);
    p.end();
    device.queue.submit([enc.finish()]);
  };
  const wall = await timeGpu(device, () => record());
  assertEquals(wall.source, "wall");
  assert(wall.ms > 0);
  if (!hasTimestamps) return console.log("adapter has no timestamp-query: PassTimer not exercised");
  const timer = new PassTimer(device, 4);
  record(timer.pass("busy"));
  record(timer.pass("busy"));
  const ms = await timer.read();
  assert(ms.busy > 0, `timestamp pass time ${ms.busy}`);
  timer.destroy();
  buf.destroy();
});
