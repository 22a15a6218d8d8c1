// One shape for every WGSL kernel: the uniform struct declared once in TS (its WGSL text is
// prepended to the shader and the same field list packs the uniform buffer, so the two cannot
// drift), pipelines per entry, shape guards that name the kernel and the buffer, binding in order
// and dispatch over grid1d (more than 65535 workgroups go to y; the shaders' flat index reads
// num_workgroups). The wrappers gpu/<name>.ts, one per shaders/<name>.wgsl, are built on it.
import { grid1d, loadShader, pipelineCache } from "./pipelines.ts";

export type Scalar = "u32" | "i32" | "f32";
/** A uniform struct's fields in declaration order (every field is 4 bytes). */
export type Fields = Readonly<Record<string, Scalar>>;
/** One value per field: nothing defaults, so a wrapper that forgets a scalar does not compile. */
export type Args<F extends Fields> = { readonly [K in keyof F]: number };

/** Where an entry's bindings are: read-only storage, read-write storage, or the uniform. */
export type BindingKind = "read" | "storage" | "uniform";

export interface KernelDef<F extends Fields> {
  /** shaders/<name>.wgsl; also the prefix of labels and error messages. */
  name: string;
  /** The uniform struct's WGSL type name, as the shader's `var<uniform>` declarations use it. */
  struct: string;
  fields: F;
  /** Invocations per workgroup: the shader's `override WG`. */
  wg: number;
  /**
   * One explicit layout shared by every entry (binding order). Needed when entries leave some
   * binding unread: "auto" layouts would then differ from entry to entry.
   */
  layout?: readonly BindingKind[];
  /** WGSL instead of shaders/<name>.wgsl (kernels generated in TS). */
  source?: string;
}

const SCALAR_ARRAY = { u32: Uint32Array, i32: Int32Array, f32: Float32Array } as const;

/** Bytes of the struct: 4 per field, rounded up to 16 (uniform buffers are bound in 16s). */
export function structBytes(fields: Fields): number {
  return Math.max(16, Math.ceil(Object.keys(fields).length / 4) * 16);
}

/** `struct Name { a: u32, b: f32, _pad0: u32 }` padded to structBytes. */
export function structWgsl(name: string, fields: Fields): string {
  const decl = Object.entries(fields).map(([f, t]) => `${f}: ${t}`);
  const pads = structBytes(fields) / 4 - decl.length;
  for (let i = 0; i < pads; i++) decl.push(`_pad${i}: u32`);
  return `struct ${name} { ${decl.join(", ")} }`;
}

/** The struct's bytes for `args`; a value its type cannot hold is an error naming the field. */
export function packArgs<F extends Fields>(kernel: string, fields: F, args: Args<F>): ArrayBuffer {
  const bytes = new ArrayBuffer(structBytes(fields));
  Object.entries(fields).forEach(([f, t], i) => {
    const v = args[f as keyof F];
    const ok = t === "f32" ? typeof v === "number" && !Number.isNaN(v) : Number.isInteger(v) &&
      (t === "u32" ? v >= 0 && v <= 0xffffffff : v >= -(2 ** 31) && v < 2 ** 31);
    if (!ok) throw new RangeError(`${kernel}: uniform field ${f} (${t}) cannot hold ${v}`);
    new SCALAR_ARRAY[t](bytes, i * 4, 1)[0] = v;
  });
  return bytes;
}

/** A storage binding: a whole buffer or a range of one. */
export type Binding = GPUBuffer | GPUBufferBinding;

function bindingFloats(b: Binding): number {
  if (b instanceof GPUBuffer) return b.size / 4;
  return (b.size ?? b.buffer.size - (b.offset ?? 0)) / 4;
}

/**
 * Throws unless `b` holds at least `values` 4-byte values; the message names the kernel, the
 * buffer and the shape the size came from.
 */
export function requireValues(
  kernel: string,
  what: string,
  b: Binding,
  values: number,
  shape: string,
): void {
  const have = bindingFloats(b);
  if (have < values) {
    throw new RangeError(`${kernel}: ${what} holds ${have} values, needs ${values} (${shape})`);
  }
}

/** Throws unless every dim is a positive integer. */
export function requireDims(kernel: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!(Number.isInteger(v) && v >= 1)) {
      throw new RangeError(`${kernel}: ${k} must be a positive integer, got ${v}`);
    }
  }
}

/**
 * Uniform buffers for the dispatches of one submit, one slot each: queue.writeBuffer lands before
 * the next submit, so two dispatches of a submit must not share a slot. reset() after the submit
 * hands the slots out again.
 */
export class UniformArena {
  #slots: GPUBuffer[] = [];
  #used = 0;
  constructor(readonly device: GPUDevice, readonly label = "uniforms") {}

  take(bytes: ArrayBuffer): GPUBuffer {
    if (this.#used >= 4096) {
      throw new Error(
        `${this.label}: 4096 dispatches without reset(): call reset() after each submit`,
      );
    }
    const size = Math.max(64, bytes.byteLength);
    let slot = this.#slots[this.#used];
    if (!slot || slot.size < size) {
      slot?.destroy();
      slot = this.device.createBuffer({
        label: `${this.label}[${this.#used}]`,
        size,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.#slots[this.#used] = slot;
    }
    this.#used++;
    this.device.queue.writeBuffer(slot, 0, bytes);
    return slot;
  }

  /** After the submit that used the slots. */
  reset(): void {
    this.#used = 0;
  }

  destroy(): void {
    for (const s of this.#slots) s.destroy();
    this.#slots = [];
    this.#used = 0;
  }
}

/** What a wrapper records into: the device, an open compute pass, and its uniforms. */
export interface Rec {
  device: GPUDevice;
  pass: GPUComputePassEncoder;
  uniforms: UniformArena;
}

/** Records `record` in one compute pass, submits it and frees the arena's slots for reuse. */
export function submitPass(
  device: GPUDevice,
  uniforms: UniformArena,
  label: string,
  record: (rec: Rec) => void,
  before?: (enc: GPUCommandEncoder) => void,
): void {
  const enc = device.createCommandEncoder({ label });
  before?.(enc);
  const pass = enc.beginComputePass({ label });
  record({ device, pass, uniforms });
  pass.end();
  device.queue.submit([enc.finish()]);
  uniforms.reset();
}

/** How many workgroups: one per `threads / wg` (split over x, y), one in all, or explicit. */
export type Grid = { threads: number } | "one workgroup" | { workgroups: [number, number?] };

const layouts = new WeakMap<GPUDevice, Map<string, GPUPipelineLayout>>();

export class Kernel<F extends Fields> {
  /** The shader with the generated struct in front. */
  readonly code: string;
  readonly name: string;

  constructor(readonly def: KernelDef<F>) {
    this.name = def.name;
    const src = def.source ?? loadShader(def.name);
    if (new RegExp(`\\bstruct\\s+${def.struct}\\b`).test(src)) {
      throw new Error(
        `${def.name}: the shader declares struct ${def.struct} itself; it comes from the field ` +
          `list in gpu/${def.name}.ts`,
      );
    }
    this.code = `${structWgsl(def.struct, def.fields)}\n${src}`;
  }

  pack(args: Args<F>): ArrayBuffer {
    return packArgs(this.name, this.def.fields, args);
  }

  /** A uniform buffer holding `args`, owned by the caller (kernels whose scalars stay fixed). */
  uniformBuffer(device: GPUDevice, args: Args<F>, label = `${this.name}.args`): GPUBuffer {
    const bytes = this.pack(args);
    const buf = device.createBuffer({
      label,
      size: bytes.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, bytes);
    return buf;
  }

  /** The pipeline of `entry`; `WG` is set unless the entry runs as one fixed workgroup. */
  pipeline(
    device: GPUDevice,
    entry: string,
    constants: Record<string, number> = { WG: this.def.wg },
  ): GPUComputePipeline {
    const label = `${this.name}.${entry}`;
    if (!this.def.layout) return pipelineCache(device).get(this.code, entry, constants, label);
    return this.#explicit(device, entry, constants, label);
  }

  #pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();
  #explicit(
    device: GPUDevice,
    entry: string,
    constants: Record<string, number>,
    label: string,
  ): GPUComputePipeline {
    let byEntry = this.#pipelines.get(device);
    if (!byEntry) this.#pipelines.set(device, byEntry = new Map());
    const key = `${entry}|${JSON.stringify(constants)}`;
    let p = byEntry.get(key);
    if (!p) {
      p = device.createComputePipeline({
        label,
        layout: this.#layout(device),
        compute: {
          module: device.createShaderModule({ label, code: this.code }),
          entryPoint: entry,
          constants,
        },
      });
      byEntry.set(key, p);
    }
    return p;
  }

  #layout(device: GPUDevice): GPUPipelineLayout {
    let byKernel = layouts.get(device);
    if (!byKernel) layouts.set(device, byKernel = new Map());
    let l = byKernel.get(this.name);
    if (!l) {
      const type = { read: "read-only-storage", storage: "storage", uniform: "uniform" } as const;
      l = device.createPipelineLayout({
        bindGroupLayouts: [device.createBindGroupLayout({
          entries: this.def.layout!.map((k, binding) => ({
            binding,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: type[k] },
          })),
        })],
      });
      byKernel.set(this.name, l);
    }
    return l;
  }

  /** Workgroups for `grid` with this kernel's workgroup size. */
  workgroups(grid: Grid): [number, number] {
    if (grid === "one workgroup") return [1, 1];
    if ("workgroups" in grid) return [grid.workgroups[0], grid.workgroups[1] ?? 1];
    return grid1d(Math.ceil(grid.threads / this.def.wg));
  }

  /**
   * Records `entry`: `bindings` in binding order, then the uniform holding `args` (from the
   * arena), over `grid`.
   */
  record(rec: Rec, entry: string, bindings: Binding[], args: Args<F>, grid: Grid): void {
    const pipeline = this.pipeline(
      rec.device,
      entry,
      grid === "one workgroup" ? {} : { WG: this.def.wg },
    );
    const u = rec.uniforms.take(this.pack(args));
    this.dispatch(rec.device, rec.pass, pipeline, [...bindings, u], this.workgroups(grid));
  }

  /** Binds `bindings` to group 0 in order and dispatches. */
  dispatch(
    device: GPUDevice,
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    bindings: Binding[],
    [x, y]: [number, number],
  ): void {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.bindGroup(device, pipeline, bindings));
    pass.dispatchWorkgroups(x, y);
  }

  bindGroup(device: GPUDevice, pipeline: GPUComputePipeline, bindings: Binding[]): GPUBindGroup {
    return device.createBindGroup({
      label: pipeline.label,
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((b, binding) => ({
        binding,
        resource: b instanceof GPUBuffer ? { buffer: b } : b,
      })),
    });
  }
}
