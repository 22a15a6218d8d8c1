// Compute pipelines compiled once per (shader source, entry point, override constants).

const shaderCache = new Map<string, string>();

/** Reads shaders/<name>.wgsl (cached). */
export function loadShader(name: string): string {
  let src = shaderCache.get(name);
  if (src === undefined) {
    src = Deno.readTextFileSync(new URL(`../shaders/${name}.wgsl`, import.meta.url));
    shaderCache.set(name, src);
  }
  return src;
}

export type Constants = Record<string, number>;

export class PipelineCache {
  #pipelines = new Map<string, GPUComputePipeline>();
  #modules = new Map<string, GPUShaderModule>();
  constructor(readonly device: GPUDevice) {}

  get(code: string, entryPoint = "main", constants: Constants = {}, label = entryPoint) {
    const ckey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",");
    const key = `${code}\u0000${entryPoint}\u0000${ckey}`;
    let p = this.#pipelines.get(key);
    if (!p) {
      let mod = this.#modules.get(code);
      if (!mod) {
        mod = this.device.createShaderModule({ label, code });
        this.#modules.set(code, mod);
      }
      p = this.device.createComputePipeline({
        label,
        layout: "auto",
        compute: { module: mod, entryPoint, constants },
      });
      this.#pipelines.set(key, p);
    }
    return p;
  }

  get size(): number {
    return this.#pipelines.size;
  }
}

const caches = new WeakMap<GPUDevice, PipelineCache>();

/** The pipeline cache of a device (one per device). */
export function pipelineCache(device: GPUDevice): PipelineCache {
  let c = caches.get(device);
  if (!c) {
    c = new PipelineCache(device);
    caches.set(device, c);
  }
  return c;
}

/** Binds buffers to group 0 in binding order and records one dispatch. */
export function dispatch(
  device: GPUDevice,
  pass: GPUComputePassEncoder,
  pipeline: GPUComputePipeline,
  buffers: GPUBuffer[],
  workgroups: [number, number?, number?],
): void {
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
}

/** Encodes `record` in one compute pass and submits it. */
export function runPass(
  device: GPUDevice,
  label: string,
  record: (pass: GPUComputePassEncoder) => void,
) {
  const enc = device.createCommandEncoder({ label });
  const pass = enc.beginComputePass({ label });
  record(pass);
  pass.end();
  device.queue.submit([enc.finish()]);
}

/** Splits a 1-D workgroup count over x and y when it exceeds the per-dimension limit. */
export function grid1d(workgroups: number, maxPerDim = 65535): [number, number] {
  if (workgroups <= maxPerDim) return [workgroups, 1];
  const y = Math.ceil(workgroups / maxPerDim);
  return [Math.ceil(workgroups / y), y];
}
