// Zero-copy between our kernels and ONNX Runtime's WebGPU EP on one GPUDevice: a WGSL kernel
// writes a buffer, ORT consumes it in place, its output stays on the GPU, a WGSL kernel reads it.
// Nothing goes through the CPU in between; only the final check reads back.
import { assert, assertEquals, assertLess } from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { dispatch, pipelineCache, runPass } from "../../gpu/pipelines.ts";
import { DataType, encodeModel, onnx } from "../../lm/onnx.ts";
import { createSession, tensorFromGpu } from "../../lm/session.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError } from "../util/rand.ts";

// y = x·W + b, with W and b initializers: enough to prove ORT read our buffer as data.
function linearModel(d: number, w: Float32Array, b: Float32Array): Uint8Array {
  const f32 = (name: string, dims: number[], data: Float32Array) =>
    onnx.TensorProto.create({
      name,
      dims,
      dataType: DataType.FLOAT,
      rawData: new Uint8Array(data.buffer.slice(0)),
    });
  const vi = (name: string, dims: (number | string)[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: {
        tensorType: {
          elemType: DataType.FLOAT,
          shape: {
            dim: dims.map((v) => (typeof v === "number" ? { dimValue: v } : { dimParam: v })),
          },
        },
      },
    });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "linear",
      node: [
        { opType: "MatMul", input: ["x", "W"], output: ["xw"], name: "mm" },
        { opType: "Add", input: ["xw", "b"], output: ["y"], name: "add" },
      ],
      initializer: [f32("W", [d, d], w), f32("b", [d], b)],
      input: [vi("x", ["n", d])],
      output: [vi("y", ["n", d])],
    },
  });
  return encodeModel(model);
}

const WRITE = `
@group(0) @binding(0) var<storage, read> seed: array<f32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < arrayLength(&x)) { x[g.x] = seed[g.x] * 3.0 - 1.0; }
}`;
const READ = `
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> z: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < arrayLength(&z)) { z[g.x] = y[g.x] * y[g.x]; }
}`;

Deno.test({
  name: "WGSL → ORT WebGPU EP → WGSL on one device, no CPU copy in between",
  // ORT keeps its own wasm runtime and timers alive across tests.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { device } = await testGpu();
    const rng = freshRng("zero-copy");
    const n = 5 + rng.int(20), d = 8;
    const seed = rng.normals(n * d), w = rng.normals(d * d, 0.5), b = rng.normals(d);
    const session = await createSession(linearModel(d, w, b), {
      ep: "webgpu",
      device,
      gpuOutputs: ["y"],
    });
    try {
      const seedBuf = upload(device, seed);
      const x = createBuffer(device, n * d * 4, "x");
      poison(device, x);
      const cache = pipelineCache(device);
      runPass(
        device,
        "write",
        (p) => dispatch(device, p, cache.get(WRITE), [seedBuf, x], [Math.ceil(n * d / 64)]),
      );
      const out = await session.run({ x: tensorFromGpu(x, "float32", [n, d]) });
      const y = out.y;
      assertEquals(y.location, "gpu-buffer", "ORT's output should stay on the GPU");
      const yBuf = y.gpuBuffer as unknown as GPUBuffer;
      const z = createBuffer(device, n * d * 4, "z");
      poison(device, z);
      runPass(
        device,
        "read",
        (p) => dispatch(device, p, cache.get(READ), [yBuf, z], [Math.ceil(n * d / 64)]),
      );
      const got = await readF32(device, z, n * d);
      // float64 reference of z = (x·W + b)², x = 3·seed − 1
      const want = new Float64Array(n * d);
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < d; j++) {
          let s = b[j];
          for (let i = 0; i < d; i++) s += (seed[r * d + i] * 3 - 1) * w[i * d + j];
          want[r * d + j] = s * s;
        }
      }
      assert(got.every(Number.isFinite), "every output element was written");
      assertLess(maxScaledError(got, want, 1e-4, 1e-4), 1);
      y.dispose();
      for (const buf of [seedBuf, x, z]) buf.destroy();
    } finally {
      await session.release();
    }
  },
});
