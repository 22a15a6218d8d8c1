// The native ONNX Runtime (onnxruntime-node, a Node-API addon), loaded on first use so that a
// machine where the addon cannot load still runs the Web runtime's EPs, and what its CUDA EP needs.
import { cpus } from "node:os";
import { DataType, encodeModel, onnx } from "./onnx.ts";

export type NativeOrt = typeof import("onnxruntime-node");

let loading: Promise<NativeOrt> | undefined;

/** The addon, or an error that says why it does not load and what to use instead. */
export function loadNativeOrt(): Promise<NativeOrt> {
  loading ??= import("onnxruntime-node").then(
    (m) => {
      // Read once, when the first session initialises ORT's logger: errors come back as
      // exceptions anyway, so its own copies on stderr are noise.
      m.env.logLevel = "error";
      return m;
    },
    (e) => {
      throw new Error(
        `the native ONNX Runtime (onnxruntime-node) does not load here: ${(e as Error).message}. ` +
          `Run ./scripts/setup.sh (it installs the npm packages), or use the ep "wasm" or "webgpu".`,
      );
    },
  );
  return loading;
}

/** Threads for the CPU EP: every core, as measured fastest on the 2-core machine. */
export function cpuThreads(): number {
  return navigator.hardwareConcurrency || cpus().length || 1;
}

/**
 * Session options of every native session (the LM's, the CPU SAE trainer's encoder). Intra-op
 * threads do not spin after a run: spinning held the cores the SAE's step and its helper thread
 * needed next (kl_step_vs_pytorch 2.0–2.3 with spinning, 3.1–3.6 without; bench/RESULTS.md).
 */
export function nativeSessionOptions(
  ep: string,
  threads: number,
  logSeverityLevel: 0 | 1 | 2 | 3 | 4 = 3,
) {
  return {
    executionProviders: [ep],
    intraOpNumThreads: threads,
    graphOptimizationLevel: "all" as const,
    logSeverityLevel,
    extra: { session: { intra_op: { allow_spinning: "0" as const } } },
  };
}

// The CUDA EP's libraries are not in the npm package (too large for the registry): the package's
// install script fetches them from NuGet, and Deno runs it only when asked to.
const CUDA_LIBS = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"];
const HOW_TO_GET_CUDA = "install them with onnxruntime-node's install script: " +
  "`./deno install --allow-scripts=npm:onnxruntime-node@1.30.0` (it downloads " +
  "Microsoft.ML.OnnxRuntime.Gpu.Linux from NuGet); the EP also needs CUDA 12, cuDNN 9 and an " +
  'NVIDIA GPU. Or use the ep "cpu"';

async function missingCudaLibs(): Promise<string[] | string> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return `onnxruntime-node has no CUDA EP for ${Deno.build.os}/${Deno.build.arch}; use the ep "cpu"`;
  }
  const entry = import.meta.resolve("onnxruntime-node");
  if (!entry.startsWith("file:")) {
    return `cannot find onnxruntime-node's files (${entry}); install the packages with ./scripts/setup.sh`;
  }
  const dir = new URL("../bin/napi-v6/linux/x64/", entry);
  const missing: string[] = [];
  for (const lib of CUDA_LIBS) {
    try {
      await Deno.stat(new URL(lib, dir));
    } catch {
      missing.push(lib);
    }
  }
  return missing;
}

/** Throws, naming what to install, when the CUDA EP's provider libraries are absent. */
export async function assertCudaLibs(): Promise<void> {
  const missing = await missingCudaLibs();
  if (typeof missing === "string") throw new Error(`ep "cuda": ${missing}`);
  if (missing.length) {
    throw new Error(
      `ep "cuda": ONNX Runtime's CUDA provider libraries are not installed (${
        missing.join(", ")
      } missing beside onnxruntime-node's binding); ${HOW_TO_GET_CUDA}.`,
    );
  }
}

/** Wraps an error from starting the CUDA EP with what it needs. */
export function cudaStartError(e: unknown): Error {
  return new Error(
    `ep "cuda": onnxruntime-node's CUDA EP did not start: ${(e as Error).message}. ` +
      `It needs CUDA 12 and cuDNN 9 on the library path and an NVIDIA GPU; or use the ep "cpu".`,
  );
}

/** A one-node model (y = x) that proves an EP starts, without loading an LM. */
export function probeModel(): Uint8Array {
  const vi = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
    });
  return encodeModel(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "probe",
      node: [{ opType: "Identity", input: ["x"], output: ["y"], name: "id" }],
      input: [vi("x")],
      output: [vi("y")],
    },
  }));
}
