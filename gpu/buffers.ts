// Buffer helpers: create, upload, read back, poison, and a size-class pool.

export const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Rounds a byte size up to WebGPU's 4-byte copy granularity (and at least 4). */
export function align4(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

export function createBuffer(
  device: GPUDevice,
  bytes: number,
  label = "buffer",
  usage: number = STORAGE,
): GPUBuffer {
  return device.createBuffer({ label, size: align4(bytes), usage });
}

type Typed = ArrayBufferView;

export function upload(
  device: GPUDevice,
  data: Typed,
  label = "upload",
  usage = STORAGE,
): GPUBuffer {
  const buf = device.createBuffer({
    label,
    size: align4(data.byteLength),
    usage,
    mappedAtCreation: true,
  });
  new Uint8Array(buf.getMappedRange()).set(
    new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength),
  );
  buf.unmap();
  return buf;
}

export function write(device: GPUDevice, buf: GPUBuffer, data: Typed, byteOffset = 0): void {
  device.queue.writeBuffer(
    buf,
    byteOffset,
    data.buffer as ArrayBuffer,
    data.byteOffset,
    data.byteLength,
  );
}

/** Copies `bytes` (default: whole buffer) of `buf` into a mappable buffer and returns the bytes. */
export async function readBytes(
  device: GPUDevice,
  buf: GPUBuffer,
  bytes = buf.size,
  byteOffset = 0,
): Promise<ArrayBuffer> {
  const size = align4(bytes);
  const staging = device.createBuffer({
    label: "readback",
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder({ label: "readback" });
  enc.copyBufferToBuffer(buf, byteOffset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(
  device: GPUDevice,
  buf: GPUBuffer,
  count?: number,
): Promise<Float32Array> {
  return new Float32Array(await readBytes(device, buf, (count ?? buf.size / 4) * 4));
}

export async function readU32(
  device: GPUDevice,
  buf: GPUBuffer,
  count?: number,
): Promise<Uint32Array> {
  return new Uint32Array(await readBytes(device, buf, (count ?? buf.size / 4) * 4));
}

export async function readI32(
  device: GPUDevice,
  buf: GPUBuffer,
  count?: number,
): Promise<Int32Array> {
  return new Int32Array(await readBytes(device, buf, (count ?? buf.size / 4) * 4));
}

const NAN_BITS = 0x7fc00000;

/** Fills a buffer with NaN (as f32 bits) so a kernel that skips an element is caught by tests. */
export function poison(device: GPUDevice, buf: GPUBuffer): void {
  const words = buf.size / 4;
  const chunk = new Uint32Array(Math.min(words, 1 << 20)).fill(NAN_BITS);
  for (let off = 0; off < words; off += chunk.length) {
    const n = Math.min(chunk.length, words - off);
    device.queue.writeBuffer(buf, off * 4, chunk.buffer, 0, n * 4);
  }
}

/**
 * Reuses freed storage buffers by size class (powers of two), so a training loop that allocates
 * the same shapes every step stops allocating after its first step.
 */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #live = 0;
  constructor(readonly device: GPUDevice) {}

  static sizeClass(bytes: number): number {
    return Math.max(256, 2 ** Math.ceil(Math.log2(align4(bytes))));
  }

  acquire(bytes: number, label = "pooled"): GPUBuffer {
    const cls = BufferPool.sizeClass(bytes);
    const list = this.#free.get(cls);
    const buf = list?.pop() ?? this.device.createBuffer({ label, size: cls, usage: STORAGE });
    this.#live += cls;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const cls = buf.size;
    this.#live -= cls;
    const list = this.#free.get(cls) ?? [];
    list.push(buf);
    this.#free.set(cls, list);
  }

  /** Bytes currently handed out. */
  get liveBytes(): number {
    return this.#live;
  }

  destroy(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
  }
}
