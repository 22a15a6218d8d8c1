// LM sessions on both runtimes. Every EP that starts here gives tiny-neox's PyTorch logits; the
// native CPU EP runs the splice gradient graphs as the wasm EP does; large models go through
// external data; cuda without its libraries is a clear error; and the zero-copy path between our
// kernels and ONNX Runtime's WebGPU EP on one GPUDevice: a WGSL kernel writes a buffer, ORT
// consumes it in place, its output stays on the GPU, a WGSL kernel reads it. Native sessions run in
// workers: timers fire during a run, the runtime's errors come back word for word, release() ends
// the session, two run side by side, and the caller's input arrays stay intact.
import {
  assert,
  assertEquals,
  assertGreater,
  assertLess,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { dispatch, pipelineCache, runPass } from "../../gpu/pipelines.ts";
import { probeModel } from "../../lm/native_ort.ts";
import { DataType, encodeModel, onnx, toOrtInput } from "../../lm/onnx.ts";
import {
  assertFitsWebRuntime,
  chooseEp,
  createSession,
  type ExecutionProvider,
  ort,
  runtimeOf,
  runtimeStatus,
  tensorFromGpu,
} from "../../lm/session.ts";
import { createSpliceGradSessions, spliceGrad } from "../../lm/splice_grad.ts";
import { klStepGraph, positionMask } from "../../lm/step_graphs.ts";
import { prefix } from "../../lm/surgery.ts";
import { feedsFor } from "../../lm/signature.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError, relError } from "../util/rand.ts";
import { FIXTURE, HOOK, loadReference, loadTiny, MODEL_PATH } from "./fixture.ts";
import { checkSpliceGrad } from "./splice_check.ts";

// ORT keeps its own wasm runtime, thread pools and timers alive across tests.
const ortTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

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

async function device(ep: ExecutionProvider): Promise<GPUDevice | undefined> {
  return ep === "webgpu" ? (await testGpu()).device : undefined;
}

async function tinyLogits(ep: ExecutionProvider, model: Parameters<typeof createSession>[0]) {
  const ref = await loadReference();
  const s = await createSession(model, { ep, device: await device(ep) });
  try {
    assertEquals(s.runtime, runtimeOf(ep));
    const out = await s.run({ input_ids: new ort.Tensor("int64", ref.inputIds, [ref.B, ref.T]) });
    assert(out.logits instanceof ort.Tensor, `${ep}: outputs are Web tensors on every runtime`);
    assertEquals([...out.logits.dims], [ref.B, ref.T, ref.V]);
    return { got: out.logits.data as Float32Array, want: ref.logitsClean };
  } finally {
    await s.release();
  }
}

// webgpu runs on llvmpipe here; it is the CI machine's adapter too.
for (const ep of ["cpu", "wasm", "webgpu"] as const) {
  ortTest(`tiny-neox logits match the PyTorch reference on the ${ep} EP`, async () => {
    const { got, want } = await tinyLogits(ep, encodeModel(await loadTiny()));
    assertLess(relError(got, want), ep === "webgpu" ? 1e-4 : 1e-5);
  });
}

ortTest("native cpu EP: the splice gradient graphs match the wasm EP's to 1e-5", async () => {
  const model = await loadTiny();
  const ref = await loadReference();
  const inp = { inputIds: ref.inputIds, recon: ref.recon, batch: ref.B, seq: ref.T };
  const results: Record<string, Record<string, { data: Float32Array }>> = {};
  for (const ep of ["cpu", "wasm"] as const) {
    // suffixGradModel: both losses and both gradients.
    const s = await createSpliceGradSessions(model, HOOK, { ep });
    const grads = await spliceGrad(s, inp).finally(() => s.release());
    // klStepGraph, the training step's graph, fed the prefix's clean activations.
    const pre = await createSession(prefix(model, HOOK), { ep });
    const step = await createSession(klStepGraph(model, HOOK), { ep });
    try {
      const ids = new ort.Tensor("int64", ref.inputIds, [ref.B, ref.T]);
      const x = (await pre.run({ input_ids: ids }))[HOOK];
      const o = await step.run(feedsFor(step.inputNames, {
        hook_clean: x,
        hook: new ort.Tensor("float32", ref.recon, [ref.B, ref.T, ref.D]),
        kl_mask: new ort.Tensor("float32", positionMask(ref.B, ref.T), [ref.B, ref.T]),
      }, { ids: ref.inputIds, batch: ref.B, seq: ref.T }));
      results[ep] = {
        ...grads,
        step_kl_mean: { data: o.kl_mean.data as Float32Array },
        step_grad_kl_hook: { data: o.grad_kl_hook.data as Float32Array },
      };
    } finally {
      await pre.release();
      await step.release();
    }
  }
  const names = Object.keys(results.wasm);
  assertGreater(names.length, 8);
  for (const name of names) {
    const e = relError(results.cpu[name].data, results.wasm[name].data);
    // A token's KL is a small difference of large sums (≈0.03 from log-probs of ≈5): float32
    // rounding there is ~1e-6 absolute, ~1e-5 relative. Every other tensor is held to 1e-5.
    if (name === "kl_per_token") {
      assertLess(maxScaledError(results.cpu[name].data, results.wasm[name].data, 0, 1e-5), 1);
      assertLess(e, 3e-5, `${name}: cpu vs wasm relative error ${e}`);
    } else {
      assertLess(e, 1e-5, `${name}: cpu vs wasm relative error ${e}`);
    }
  }
});

ortTest("native cpu EP: splice-grad matches the PyTorch reference (tiny-neox)", async () => {
  await checkSpliceGrad(
    new URL(MODEL_PATH, "file:"),
    new URL(`${FIXTURE}reference.safetensors`, "file:"),
    HOOK,
    "cpu",
  );
});

ortTest("native cpu EP: a model split into several external data files", async () => {
  const model = await loadTiny();
  const split = toOrtInput(model, { maxFileBytes: 1 << 20 });
  assertGreater(split.externalData.length, 2); // 3.5 MB of weights in ≤ 1 MiB files
  assertLess(split.bytes.byteLength, 200_000);
  const { got, want } = await tinyLogits("cpu", split);
  assertLess(relError(got, want), 1e-5);
  // A ModelProto is encoded by createSession itself.
  const whole = await tinyLogits("cpu", model);
  assertLess(relError(whole.got, whole.want), 1e-5);
  // The native runtime reads them from a temporary folder: names cannot point out of it.
  const evil = { ...split, externalData: [{ ...split.externalData[0], path: "../w.data" }] };
  await assertRejects(() => createSession(evil, { ep: "cpu" }), Error, "plain file name");
});

ortTest(
  "the Web runtime refuses a model over 4 GiB or an initializer over 2 GiB, naming cpu",
  async () => {
    assertFitsWebRuntime(2 ** 32, "wasm");
    for (const ep of ["wasm", "webgpu"] as const) {
      const e = assertThrows(() => assertFitsWebRuntime(2 ** 32 + 1, ep));
      assertStringIncludes((e as Error).message, `"cpu" or "cuda"`);
    }
    // Through createSession, before ORT sees it: 5 GiB of weights (a length, not an allocation).
    const big = { byteLength: 5 * 2 ** 30 } as Uint8Array;
    const model = { bytes: new Uint8Array(16), externalData: [{ path: "w.data", data: big }] };
    await assertRejects(() => createSession(model, { ep: "wasm" }), Error, "5.00 GiB");
    // One initializer over 2 GiB (declared dims; the check comes before any data is read).
    const proto = onnx.ModelProto.create({
      graph: {
        initializer: [onnx.TensorProto.create({ name: "E", dims: [2 ** 29 + 1, 4], dataType: 1 })],
      },
    });
    await assertRejects(() => createSession(proto, { ep: "wasm" }), Error, 'Use the ep "cpu"');
  },
);

ortTest("cuda: runs where its libraries load, otherwise a clear error naming them", async () => {
  const status = await runtimeStatus();
  if (status.eps.cuda.available) {
    const { got, want } = await tinyLogits("cuda", encodeModel(await loadTiny()));
    assertLess(relError(got, want), 1e-4);
    return;
  }
  const bytes = encodeModel(await loadTiny());
  const e = await assertRejects(() => createSession(bytes, { ep: "cuda" }));
  const msg = (e as Error).message;
  assertStringIncludes(msg, 'ep "cuda"');
  assert(/libonnxruntime_providers_cuda\.so|CUDA 12/.test(msg), msg);
  assertStringIncludes(msg, 'use the ep "cpu"');
  assertEquals(status.eps.cuda.reason, msg);
});

ortTest(
  "auto: cuda where it starts, else the native cpu EP; explicit EPs pass through",
  async () => {
    const status = await runtimeStatus();
    assert(status.eps.cpu.available, `the native runtime must load: ${status.eps.cpu.reason}`);
    assert(status.eps.wasm.available, String(status.eps.wasm.reason));
    assertEquals(await chooseEp("auto"), status.eps.cuda.available ? "cuda" : "cpu");
    assertEquals(status.auto, await chooseEp("auto"));
    assertEquals(status.versions.node, "1.30.0");
    for (const ep of ["cpu", "cuda", "webgpu", "wasm"] as const) {
      assertEquals(
        await chooseEp(ep),
        ep,
      );
    }
    await assertRejects(
      () => chooseEp("gpu" as ExecutionProvider),
      Error,
      "cpu, cuda, webgpu, wasm",
    );
  },
);

ortTest(
  "tensors cross runtimes; a GPU tensor fed to the cpu EP is an error naming it",
  async () => {
    const { device } = await testGpu();
    const rng = freshRng("cross-runtime");
    const n = 3 + rng.int(5), d = 8;
    const w = rng.normals(d * d, 0.5), b = rng.normals(d), x = rng.normals(n * d);
    const cpu = await createSession(linearModel(d, w, b), { ep: "cpu" });
    const wasm = await createSession(linearModel(d, w, b), { ep: "wasm" });
    const buf = upload(device, x);
    try {
      // cpu's output feeds wasm and back: y2 = (x·W + b)·W + b on both orders.
      const y1 = (await cpu.run({ x: new ort.Tensor("float32", x, [n, d]) })).y;
      const viaWasm = (await wasm.run({ x: y1 })).y;
      const viaCpu =
        (await cpu.run({ x: (await wasm.run({ x: new ort.Tensor("float32", x, [n, d]) })).y })).y;
      const want = new Float64Array(n * d);
      const lin = (v: ArrayLike<number>) => {
        const out = new Float64Array(n * d);
        for (let r = 0; r < n; r++) {
          for (let j = 0; j < d; j++) {
            let s = b[j];
            for (let i = 0; i < d; i++) s += v[r * d + i] * w[i * d + j];
            out[r * d + j] = s;
          }
        }
        return out;
      };
      want.set(lin(lin(x)));
      assertLess(maxScaledError(viaWasm.data as Float32Array, want, 1e-4, 1e-4), 1);
      assertLess(maxScaledError(viaCpu.data as Float32Array, want, 1e-4, 1e-4), 1);
      await assertRejects(
        () => cpu.run({ x: tensorFromGpu(buf, "float32", [n, d]) }),
        Error,
        'input "x" is a gpu-buffer tensor; the ep "cpu" reads CPU tensors',
      );
    } finally {
      buf.destroy();
      await cpu.release();
      await wasm.release();
    }
  },
);

// A native session computes in a worker: the main thread's timers keep firing through a long run
// (on the main thread, a 358 ms forward let zero 10 ms timers fire).
ortTest("native cpu EP: the event loop keeps turning while a session runs", async () => {
  const s = await createSession(encodeModel(await loadTiny()), { ep: "cpu" });
  try {
    const B = 32, T = 128;
    const ids = new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7919) % 251)),
      [B, T],
    );
    await s.run({ input_ids: ids }); // warm-up: allocations, first-run planning
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const t0 = performance.now();
    try {
      for (let i = 0; i < 4; i++) await s.run({ input_ids: ids });
    } finally {
      clearInterval(timer);
    }
    const elapsed = performance.now() - t0;
    assertGreater(elapsed, 200, "the runs must be long enough for the test to mean something");
    // On the main thread only the gaps between the 4 runs let a tick through (≈ 4).
    assertGreater(ticks, 0.3 * elapsed / 10, `${ticks} ticks in ${elapsed.toFixed(0)} ms`);
  } finally {
    await s.release();
  }
});

ortTest(
  "native cpu EP: the runtime's error comes back as it is; the session survives",
  async () => {
    const model = encodeModel(await loadTiny());
    const ref = await loadReference();
    const bad = { input_ids: new ort.Tensor("int64", ref.inputIds, [ref.B, ref.T, 1]) };
    // What onnxruntime-node says on this thread, for the same bad feed.
    const native = await import("onnxruntime-node");
    const direct = await native.InferenceSession.create(model);
    const want = await direct.run({
      input_ids: new native.Tensor("int64", ref.inputIds, [ref.B, ref.T, 1]),
    }).then(() => "", (e) => (e as Error).message);
    await direct.release();
    assertStringIncludes(want, "input_ids");
    const s = await createSession(model, { ep: "cpu" });
    try {
      const e = await assertRejects(() => s.run(bad));
      assertEquals((e as Error).message, want);
      const ok = await s.run({ input_ids: new ort.Tensor("int64", ref.inputIds, [ref.B, ref.T]) });
      assertLess(relError(ok.logits.data as Float32Array, ref.logitsClean), 1e-5);
    } finally {
      await s.release();
    }
  },
);

ortTest("native cpu EP: the worker starts whatever globalThis.Worker is", async () => {
  // ORT Web's wasm glue swaps globalThis.Worker for Node's while it creates a session.
  const saved = globalThis.Worker;
  globalThis.Worker = class {
    constructor() {
      throw new Error("globalThis.Worker was used");
    }
  } as unknown as typeof Worker;
  try {
    const s = await createSession(probeModel(), { ep: "cpu", threads: 1 });
    await s.release();
  } finally {
    globalThis.Worker = saved;
  }
});

ortTest("native cpu EP: release() lets queued runs finish; later runs reject", async () => {
  const s = await createSession(probeModel(), { ep: "cpu", threads: 1 });
  const x = new ort.Tensor("float32", new Float32Array([2.5]), [1]);
  const inFlight = s.run({ x });
  const releasing = s.release();
  await assertRejects(() => s.run({ x }), Error, "released (release() was called)");
  assertEquals([...(await inFlight).y.data as Float32Array], [2.5]);
  await releasing;
  await assertRejects(() => s.run({ x }), Error, "create a new session");
  await s.release(); // a second release is harmless
});

ortTest(
  "native cpu EP: two sessions run in parallel; the caller's inputs stay usable",
  async () => {
    const model = encodeModel(await loadTiny());
    const ref = await loadReference();
    const [a, b] = await Promise.all([
      createSession(model, { ep: "cpu" }),
      createSession(model, { ep: "cpu" }),
    ]);
    try {
      const ids = new ort.Tensor("int64", ref.inputIds, [ref.B, ref.T]);
      const before = ref.inputIds.slice();
      const [oa, ob] = await Promise.all([a.run({ input_ids: ids }), b.run({ input_ids: ids })]);
      for (const o of [oa, ob]) {
        assert(o.logits instanceof ort.Tensor);
        assertLess(relError(o.logits.data as Float32Array, ref.logitsClean), 1e-5);
      }
      // Feeds are copied as they cross: the same tensor is whole and feeds a later run.
      assertEquals(ref.inputIds, before);
      const again = await a.run({ input_ids: ids });
      assertEquals(again.logits.data, oa.logits.data);
      assert(oa.logits.data !== ob.logits.data, "each run has its own output arrays");
    } finally {
      await a.release();
      await b.release();
    }
  },
);
