// Splits a long f32 array into ranges that each fit one storage binding. llvmpipe allows 128 MiB
// per binding, less than one 131072×768 matrix, so element-wise kernels bind it piece by piece.

export interface Chunk {
  /** First element of the range. */
  offset: number;
  /** Elements in the range. */
  count: number;
}

export interface ChunkLimits {
  maxBindingBytes: number;
  offsetAlignmentBytes: number;
}

export function chunkLimits(device: GPUDevice, maxBindingBytes?: number): ChunkLimits {
  return {
    maxBindingBytes: Math.min(
      maxBindingBytes ?? Infinity,
      device.limits.maxStorageBufferBindingSize,
    ),
    offsetAlignmentBytes: device.limits.minStorageBufferOffsetAlignment,
  };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Ranges of whole rows (`rowLen` f32 each) covering `count` elements, each no larger than the
 * binding limit and each starting at an offset the device accepts.
 */
export function f32Chunks(count: number, limits: ChunkLimits, rowLen = 1): Chunk[] {
  if (count % rowLen !== 0) {
    throw new Error(`f32Chunks: ${count} elements is not a whole number of ${rowLen}-rows`);
  }
  const alignElems = limits.offsetAlignmentBytes / 4;
  // Rows per chunk must keep every chunk start aligned.
  const rowStep = alignElems / gcd(alignElems, rowLen);
  const maxRows = Math.floor(limits.maxBindingBytes / 4 / rowLen);
  const rowsPerChunk = Math.floor(maxRows / rowStep) * rowStep;
  if (rowsPerChunk < 1) {
    throw new Error(
      `f32Chunks: a ${rowLen}-float row does not fit a ${limits.maxBindingBytes}-byte binding`,
    );
  }
  const rows = count / rowLen;
  const out: Chunk[] = [];
  for (let r = 0; r < rows; r += rowsPerChunk) {
    out.push({ offset: r * rowLen, count: Math.min(rowsPerChunk, rows - r) * rowLen });
  }
  if (out.length === 0) out.push({ offset: 0, count: 0 });
  return out;
}

/** A binding of `chunk` inside `buffer` (f32 elements). */
export function chunkBinding(buffer: GPUBuffer, chunk: Chunk): GPUBufferBinding {
  return { buffer, offset: chunk.offset * 4, size: Math.max(4, chunk.count * 4) };
}
