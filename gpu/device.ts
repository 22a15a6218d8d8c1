// Adapter and device acquisition. One GpuContext per process: the WGSL kernels and ONNX Runtime's
// WebGPU EP share its device, so tensors pass between them as GPUBuffers without copies.

export class GpuUnavailableError extends Error {
  override name = "GpuUnavailableError";
}

export class GpuDeviceLostError extends Error {
  override name = "GpuDeviceLostError";
}

export interface AdapterSummary {
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  /** True for software rasterisers (llvmpipe, SwiftShader): pick CPU-friendly tile sizes. */
  isSoftware: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface GpuContext {
  adapter: GPUAdapter;
  device: GPUDevice;
  info: AdapterSummary;
  hasTimestamps: boolean;
  hasF16: boolean;
  /** Set once the device is lost; every later use should fail with this reason. */
  lostReason: string | null;
  /** Throws GpuDeviceLostError if the device has been lost. Call before starting GPU work. */
  assertAlive(): void;
}

const HOW_TO_GET_A_GPU = "On a machine without a GPU, install Debian's mesa-vulkan-drivers " +
  "(apt-get install -y mesa-vulkan-drivers) for the llvmpipe software adapter, or run " +
  "scripts/setup.sh, which does it.";

export function summarizeAdapter(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info;
  const limits: Record<string, number> = {};
  // GPUSupportedLimits exposes its fields as prototype getters, so walk the prototype.
  const proto = Object.getPrototypeOf(adapter.limits);
  for (const key of Object.keys(Object.getOwnPropertyDescriptors(proto))) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") limits[key] = v;
  }
  const description = info.description ||
    `${info.vendor} ${info.architecture} ${info.device}`.trim();
  return {
    description,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    isSoftware: /llvmpipe|swiftshader|lavapipe|software/i.test(description),
    features: [...adapter.features].sort(),
    limits,
  };
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Log the adapter's description to stderr. Default true. */
  log?: boolean;
}

/** Requests the high-performance adapter with all of its limits and the features we use. */
export async function acquireGpu(opts: AcquireOptions = {}): Promise<GpuContext> {
  if (!("gpu" in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError(`WebGPU is not available in this runtime. ${HOW_TO_GET_A_GPU}`);
  }
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: opts.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new GpuUnavailableError(`No WebGPU adapter was found. ${HOW_TO_GET_A_GPU}`);
  }
  const info = summarizeAdapter(adapter);
  const wanted: GPUFeatureName[] = ["timestamp-query", "shader-f16", "subgroups" as GPUFeatureName];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (
    const key of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY",
      "maxComputeWorkgroupsPerDimension",
      "maxStorageBuffersPerShaderStage",
    ]
  ) {
    if (key in info.limits) requiredLimits[key] = info.limits[key];
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const ctx: GpuContext = {
    adapter,
    device,
    info,
    hasTimestamps: device.features.has("timestamp-query"),
    hasF16: device.features.has("shader-f16"),
    lostReason: null,
    assertAlive() {
      if (ctx.lostReason !== null) {
        throw new GpuDeviceLostError(
          `The GPU device was lost (${ctx.lostReason}); restart the service to acquire a new one.`,
        );
      }
    },
  };
  device.lost.then((lost) => {
    ctx.lostReason = `${lost.reason}: ${lost.message}`;
    if (lost.reason !== "destroyed") console.error(`splice: GPU device lost: ${ctx.lostReason}`);
  });
  device.addEventListener("uncapturederror", (ev) => {
    console.error(`splice: uncaptured GPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  if (opts.log ?? true) console.error(`splice: GPU adapter: ${info.description}`);
  if (info.isSoftware) softwareDevices.add(device);
  return ctx;
}

const softwareDevices = new WeakSet<GPUDevice>();

/** True when `device` came from a software adapter (llvmpipe): kernels pick CPU-shaped tiles. */
export function isSoftwareDevice(device: GPUDevice): boolean {
  return softwareDevices.has(device);
}

/** Runs fn inside a validation + out-of-memory error scope and throws what the scope caught. */
export async function withErrorScope<T>(device: GPUDevice, what: string, fn: () => T): Promise<T> {
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const out = fn();
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (oom) throw new Error(`${what}: GPU out of memory: ${oom.message}`);
  if (validation) throw new Error(`${what}: GPU validation error: ${validation.message}`);
  return out;
}
