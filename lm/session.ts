// LM sessions on two ONNX Runtimes behind one interface. The native runtime (onnxruntime-node)
// runs the CPU EP on every core and, where its libraries are installed, CUDA; ONNX Runtime Web
// runs the wasm EP and the WebGPU EP, which shares our GPUDevice so inputs can be our GPUBuffers
// and outputs can stay on the GPU. Callers build tensors with Web's `ort.Tensor` whatever the EP,
// and every session hands outputs back as Web tensors, so `.data`/`.dims` read the same everywhere.
// A native session runs in a worker of its own (lm/native_worker.ts): its `run` computes
// synchronously, and on the main thread it would stall the service for a whole training step.
// Its feeds are copied once as they cross (the caller's arrays stay usable), its outputs move.
import * as ort from "onnxruntime-web/webgpu";
import {
  elemSize,
  encodeModel,
  type ModelProto,
  saveModel,
  tensorDims,
  toOrtInput,
} from "./onnx.ts";
import {
  assertCudaLibs,
  cpuThreads,
  cudaStartError,
  loadNativeOrt,
  nativeSessionOptions,
  probeModel,
} from "./native_ort.ts";
import { type NativeWorkerSession, startNativeWorker, type WireTensor } from "./native_worker.ts";

export { ort };

export const EXECUTION_PROVIDERS = ["cpu", "cuda", "webgpu", "wasm"] as const;
export type ExecutionProvider = typeof EXECUTION_PROVIDERS[number];
export type EpRequest = "auto" | ExecutionProvider;
export type RuntimeName = "onnxruntime-node" | "onnxruntime-web";

export function runtimeOf(ep: ExecutionProvider): RuntimeName {
  switch (ep) {
    case "cpu":
    case "cuda":
      return "onnxruntime-node";
    case "webgpu":
    case "wasm":
      return "onnxruntime-web";
  }
  throw new Error(`unknown ONNX Runtime EP "${ep}"; use one of ${EXECUTION_PROVIDERS.join(", ")}`);
}

/** What a job records about the runtime that ran its LM. */
export function runtimeInfo(ep: ExecutionProvider): { name: RuntimeName; ep: ExecutionProvider } {
  return { name: runtimeOf(ep), ep };
}

/** A model as ORT takes it when it is too large for one protobuf: weights in data files. */
export interface OrtModelInput {
  bytes: Uint8Array;
  externalData: { path: string; data: Uint8Array }[];
}

/** Encoded bytes, a ModelProto (encoded here, with external data when large), or split input. */
export type ModelInput = Uint8Array | ModelProto | OrtModelInput;

export interface SessionOptions {
  ep: ExecutionProvider;
  /** Required for the WebGPU EP: the device our kernels use. */
  device?: GPUDevice;
  /** Outputs to keep on the GPU (WebGPU EP only); on other EPs every output is a CPU tensor. */
  gpuOutputs?: string[] | "all";
  logLevel?: "verbose" | "info" | "warning" | "error" | "fatal";
  /** CPU EP threads; default every core. */
  threads?: number;
}

export interface LmSession {
  runtime: RuntimeName;
  ep: ExecutionProvider;
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/** Protobuf cannot encode a message over 2 GiB; weights past this go to external data. */
export const INLINE_MODEL_MAX_BYTES = 2 ** 30;
/** ONNX Runtime Web's wasm heap is 32-bit: the model and its weights must fit in 4 GiB. */
export const WEB_MODEL_MAX_BYTES = 4 * 2 ** 30;

// Creating a wasm session swaps globalThis.Worker for Node's worker_threads Worker (the
// Emscripten glue takes Deno for Node); restore the web Worker so later `new Worker(url)` works.
// Native sessions start their workers from this reference, whatever globalThis holds then.
const WebWorker = globalThis.Worker;
// More than one wasm thread needs a blob-URL worker, which Deno refuses ("Only file and data URLs").
ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

const LOG_SEVERITY = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const;

export async function createSession(model: ModelInput, opts: SessionOptions): Promise<LmSession> {
  return runtimeOf(opts.ep) === "onnxruntime-node"
    ? await nativeSession(model, opts)
    : await webSession(webInput(model, opts.ep), opts);
}

function isSplit(m: ModelInput): m is OrtModelInput {
  return !(m instanceof Uint8Array) && "externalData" in m && "bytes" in m;
}

function initializerSizes(model: ModelProto): number[] {
  return (model.graph?.initializer ?? []).map((t) => {
    try {
      return tensorDims(t).reduce((a, b) => a * b, 1) * elemSize(t.dataType ?? 0);
    } catch {
      return t.rawData?.byteLength ?? 0; // a type without a fixed size: count what is stored
    }
  });
}

function initializerBytes(model: ModelProto): number {
  return initializerSizes(model).reduce((a, b) => a + b, 0);
}

function webInput(model: ModelInput, ep: ExecutionProvider): OrtModelInput {
  if (model instanceof Uint8Array) return { bytes: model, externalData: [] };
  if (isSplit(model)) return model;
  assertFitsWebRuntime(initializerBytes(model), ep); // before copying gigabytes into data files
  // ORT takes in-memory external data only up to 2 GiB per initializer.
  if (initializerSizes(model).some((n) => n > 2 ** 31)) {
    throw new Error(
      `the model has an initializer over 2 GiB, more than ONNX Runtime Web loads. Use the ep "cpu" ` +
        `or "cuda" (the native runtime).`,
    );
  }
  return initializerBytes(model) > INLINE_MODEL_MAX_BYTES
    ? toOrtInput(model)
    : { bytes: encodeModel(model), externalData: [] };
}

export function modelInputBytes(input: OrtModelInput): number {
  return input.externalData.reduce((s, f) => s + f.data.byteLength, input.bytes.byteLength);
}

/** Throws, naming the EPs that can, when a model is too large for ONNX Runtime Web. */
export function assertFitsWebRuntime(bytes: number, ep: ExecutionProvider): void {
  if (bytes > WEB_MODEL_MAX_BYTES) {
    throw new Error(
      `the model is ${(bytes / 2 ** 30).toFixed(2)} GiB: ONNX Runtime Web (ep "${ep}") loads at ` +
        `most 4 GiB (its wasm heap is 32-bit). Use the ep "cpu" or "cuda" (the native runtime).`,
    );
  }
}

/**
 * Runs `create` on the model as the native runtime takes it: bytes, or, with external data, the
 * path of a copy in a temporary folder (removed after). ORT holds in-memory external data to 2 GiB
 * per initializer (Gemma-2's embedding is 2.4 GB in float32); from files it has no such limit and
 * makes one copy fewer. `owned` says the bytes were encoded here, so `create` may take them.
 */
async function withNativeModel<T>(
  model: ModelInput,
  create: (m: Uint8Array | string, owned: boolean) => Promise<T>,
): Promise<T> {
  if (model instanceof Uint8Array) return await create(model, false);
  const split = isSplit(model);
  if (split ? !model.externalData.length : initializerBytes(model) <= INLINE_MODEL_MAX_BYTES) {
    return await create(split ? model.bytes : encodeModel(model), !split);
  }
  const dir = await Deno.makeTempDir({ prefix: "splice-model-" });
  try {
    const path = `${dir}/model.onnx`;
    if (split) {
      for (const f of model.externalData) {
        if (!/^\w[\w.-]*$/.test(f.path) || f.path === "model.onnx") {
          throw new Error(`external data "${f.path}": expected a plain file name`);
        }
        await Deno.writeFile(`${dir}/${f.path}`, f.data);
      }
      await Deno.writeFile(path, model.bytes);
    } else {
      await saveModel(model, path, { externalDataThreshold: 1024 });
    }
    return await create(path, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function webSession(input: OrtModelInput, opts: SessionOptions): Promise<LmSession> {
  assertFitsWebRuntime(modelInputBytes(input), opts.ep);
  let executionProviders: ort.InferenceSession.ExecutionProviderConfig[];
  if (opts.ep === "webgpu") {
    if (!opts.device) {
      throw new Error(
        "createSession: the WebGPU EP needs the shared GPUDevice (opts.device); " +
          "without it ORT would create its own device and our buffers could not be passed in.",
      );
    }
    executionProviders = [
      {
        name: "webgpu",
        device: opts.device,
      } as unknown as ort.InferenceSession.ExecutionProviderConfig,
    ];
  } else {
    executionProviders = ["wasm"];
  }
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders,
    logSeverityLevel: LOG_SEVERITY[opts.logLevel ?? "error"],
    graphOptimizationLevel: "all",
    ...(input.externalData.length ? { externalData: input.externalData } : {}),
  };
  if (opts.ep === "webgpu" && opts.gpuOutputs) {
    sessionOptions.preferredOutputLocation = opts.gpuOutputs === "all" ? "gpu-buffer" : Object
      .fromEntries(opts.gpuOutputs.map((n) => [n, "gpu-buffer" as const]));
  }
  const session = await ort.InferenceSession.create(input.bytes, sessionOptions);
  if (globalThis.Worker !== WebWorker) globalThis.Worker = WebWorker;
  return {
    runtime: "onnxruntime-web",
    ep: opts.ep,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    run: (feeds) => session.run(asWebTensors(feeds)) as Promise<Record<string, ort.Tensor>>,
    release: () => session.release(),
  };
}

async function nativeSession(model: ModelInput, opts: SessionOptions): Promise<LmSession> {
  if (opts.ep === "cuda") await assertCudaLibs();
  const options = nativeSessionOptions(
    opts.ep,
    opts.threads ?? cpuThreads(),
    LOG_SEVERITY[opts.logLevel ?? "error"],
  );
  let session: NativeWorkerSession;
  try {
    session = await withNativeModel(
      model,
      (m, owned) => startNativeWorker(WebWorker, m, owned, options),
    );
  } catch (e) {
    if (opts.ep === "cuda" && /cuda|cudnn|provider|shared lib/i.test((e as Error).message)) {
      throw cudaStartError(e);
    }
    throw e;
  }
  return {
    runtime: "onnxruntime-node",
    ep: opts.ep,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    // Inputs are copied as they cross, so callers may reuse them (a hook tensor fed twice).
    run: async (feeds) => fromWire(await session.run(cpuFeeds(feeds, opts.ep))),
    release: () => session.release(),
  };
}

// The two packages bundle distinct Tensor classes over the same typed arrays: rewrapping is free.
function asWebTensors(ts: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(ts)) {
    if (t instanceof ort.Tensor) {
      out[name] = t;
      continue;
    }
    if (t.location !== "cpu" && t.location !== "cpu-pinned") {
      throw new Error(`tensor "${name}" is a ${t.location} tensor of another ONNX Runtime package`);
    }
    out[name] = new ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
  }
  return out;
}

function cpuFeeds(
  feeds: Record<string, ort.Tensor>,
  ep: ExecutionProvider,
): Record<string, WireTensor> {
  for (const [name, t] of Object.entries(feeds)) {
    if (t.location !== "cpu" && t.location !== "cpu-pinned") {
      throw new Error(
        `input "${name}" is a ${t.location} tensor; the ep "${ep}" reads CPU tensors ` +
          `(GPU buffers pass only to the ep "webgpu"): read it back with getData() first`,
      );
    }
  }
  return feeds as Record<string, WireTensor>;
}

function fromWire(ts: Record<string, WireTensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(ts)) {
    out[name] = new ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
  }
  return out;
}

/** Wraps one of our GPUBuffers as an ORT tensor (no copy); for sessions on the ep "webgpu". */
export function tensorFromGpu(
  buffer: GPUBuffer,
  dataType: ort.Tensor.GpuBufferDataTypes,
  dims: readonly number[],
): ort.Tensor {
  return ort.Tensor.fromGpuBuffer(buffer as unknown as ort.Tensor.GpuBufferType, {
    dataType,
    dims,
  });
}

export interface EpStatus {
  runtime: RuntimeName;
  available: boolean;
  /** Why it is not available, and what to do. */
  reason?: string;
}

export interface RuntimeStatus {
  versions: { web: string; node: string | null };
  /** What "auto" resolves to on this machine. */
  auto: ExecutionProvider;
  /** webgpu's availability is the GPU device's: the caller knows it (see routes/health.ts). */
  eps: Record<Exclude<ExecutionProvider, "webgpu">, EpStatus>;
}

let status: Promise<RuntimeStatus> | undefined;

/** Probes, once per process, which EPs start here: each creates a one-node session. */
export function runtimeStatus(): Promise<RuntimeStatus> {
  status ??= probeRuntimes();
  return status;
}

async function probe(ep: ExecutionProvider): Promise<EpStatus> {
  try {
    const s = await createSession(probeModel(), { ep, threads: 1 });
    await s.release();
    return { runtime: runtimeOf(ep), available: true };
  } catch (e) {
    return { runtime: runtimeOf(ep), available: false, reason: (e as Error).message };
  }
}

async function probeRuntimes(): Promise<RuntimeStatus> {
  const cpu = await probe("cpu");
  // Without the addon, the CUDA probe would only repeat the CPU probe's reason.
  const cuda = cpu.available ? await probe("cuda") : { ...cpu, runtime: runtimeOf("cuda") };
  const wasm = await probe("wasm");
  let node: string | null = null;
  if (cpu.available) node = (await loadNativeOrt()).env.versions.node ?? null;
  const auto = cuda.available ? "cuda" : cpu.available ? "cpu" : "wasm";
  return {
    versions: { web: ort.env.versions.web ?? ort.env.versions.common, node },
    auto,
    eps: { cpu, cuda, wasm },
  };
}

/**
 * The EP for a request. "auto" is the fastest EP that starts here: cuda where its libraries load,
 * else the native cpu EP (9× ORT Web's wasm EP and 30× llvmpipe on tiny-neox), else wasm. It never
 * picks webgpu: on a real GPU it has not been measured against cuda/cpu, so it is an explicit
 * choice (the zero-copy path between ORT and our kernels).
 */
export async function chooseEp(requested: EpRequest): Promise<ExecutionProvider> {
  if (requested === "auto") return (await runtimeStatus()).auto;
  runtimeOf(requested); // an unknown name is an error naming the valid ones
  return requested;
}

/**
 * Sessions created in order (null specs give null); if one fails, those already created are
 * released, so no session (on the native runtime, a worker thread) outlives a failed setup.
 */
export async function createSessions(
  specs: readonly ({ model: ModelInput; opts: SessionOptions } | null)[],
): Promise<(LmSession | null)[]> {
  const made: (LmSession | null)[] = [];
  try {
    for (const s of specs) made.push(s ? await createSession(s.model, s.opts) : null);
    return made;
  } catch (e) {
    for (const m of made) await m?.release().catch(() => {});
    throw e;
  }
}
