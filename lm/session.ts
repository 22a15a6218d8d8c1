// ONNX Runtime Web sessions. On the WebGPU EP they share our GPUDevice, so inputs can be our
// GPUBuffers and outputs can stay on the GPU; the wasm EP (CPU) is an explicit choice, the right
// one on machines whose only adapter is llvmpipe.
import * as ort from "onnxruntime-web/webgpu";

export { ort };

export type ExecutionProvider = "webgpu" | "wasm";

export interface SessionOptions {
  ep: ExecutionProvider;
  /** Required for the WebGPU EP: the device our kernels use. */
  device?: GPUDevice;
  /** Outputs to keep on the GPU (WebGPU EP only); others come back to the CPU. */
  gpuOutputs?: string[] | "all";
  logLevel?: "verbose" | "info" | "warning" | "error" | "fatal";
}

// Creating a wasm session swaps globalThis.Worker for Node's worker_threads Worker (the
// Emscripten glue takes Deno for Node); restore the web Worker so later `new Worker(url)` works.
const WebWorker = globalThis.Worker;
ort.env.wasm.numThreads = 1; // >1 needs a blob-URL worker, which Deno refuses (see DESIGN.md).
ort.env.logLevel = "error";

export interface LmSession {
  session: ort.InferenceSession;
  ep: ExecutionProvider;
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export async function createSession(
  model: Uint8Array,
  opts: SessionOptions,
): Promise<LmSession> {
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
    logSeverityLevel: 3,
    graphOptimizationLevel: "all",
  };
  if (opts.ep === "webgpu" && opts.gpuOutputs) {
    sessionOptions.preferredOutputLocation = opts.gpuOutputs === "all" ? "gpu-buffer" : Object
      .fromEntries(opts.gpuOutputs.map((n) => [n, "gpu-buffer" as const]));
  }
  const session = await ort.InferenceSession.create(model, sessionOptions);
  if (globalThis.Worker !== WebWorker) globalThis.Worker = WebWorker;
  return {
    session,
    ep: opts.ep,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    run: (feeds) => session.run(feeds) as Promise<Record<string, ort.Tensor>>,
    release: () => session.release(),
  };
}

/** Wraps one of our GPUBuffers as an ORT tensor (no copy). */
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
