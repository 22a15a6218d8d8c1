// BatchTopK activations (shaders/batch_topk.wgsl): while training, the K·N largest positive
// pre-activations of the whole batch (a radix select over order-preserving keys); at inference,
// pre where pre > θ (one θ, or one per latent: JumpReLU's activation).
import { readU32, write } from "./buffers.ts";
import { type Binding, Kernel, type Rec, requireDims, requireValues } from "./kernel.ts";

const kernel = new Kernel({
  name: "batch_topk",
  struct: "Args",
  fields: { count: "u32", want: "u32", cols: "u32" },
  wg: 64,
});

/** u32 words of the selection state: [prefix T, digit mask, still wanted, round, positives, …]. */
export const SELECT_STATE_WORDS = 8;
/** Bins of the selection histogram (one 8-bit digit). */
export const SELECT_HIST_BINS = 256;

/** The float whose order-preserving key (the shaders' key()) is k. */
export function fromKey(k: number): number {
  const u = (k & 0x80000000) ? (k & 0x7fffffff) : (~k >>> 0);
  return new Float32Array(Uint32Array.of(u).buffer)[0];
}

/** Zeroes the selection state and histogram (before the next submit): select() needs them so. */
export function clearSelection(
  device: GPUDevice,
  { state, hist }: { state: GPUBuffer; hist: GPUBuffer },
): void {
  write(device, state, new Uint32Array(SELECT_STATE_WORDS));
  write(device, hist, new Uint32Array(SELECT_HIST_BINS));
}

/**
 * h = pre where pre is among the `want` largest positive values of pre (all `count` of them;
 * exact ties at the cut all kept, every positive kept when there are fewer), 0 elsewhere. `state`
 * and `hist` must be zero (clearSelection) before the submit.
 */
export function select(
  rec: Rec,
  { pre, state, hist, h }: { pre: Binding; state: Binding; hist: Binding; h: Binding },
  { count, want }: { count: number; want: number },
): void {
  const name = "batch_topk.select";
  requireDims(name, { count, want });
  const shape = `count=${count}`;
  requireValues(name, "pre", pre, count, shape);
  requireValues(name, "state", state, SELECT_STATE_WORDS, shape);
  requireValues(name, "hist", hist, SELECT_HIST_BINS, shape);
  requireValues(name, "h", h, count, shape);
  const args = { count, want, cols: 0 };
  for (let round = 0; round < 4; round++) {
    kernel.record(rec, "hist", [pre, state, hist], args, { threads: count });
    kernel.record(rec, "pick", [state, hist], args, "one workgroup");
  }
  kernel.record(rec, "mask", [pre, state, h], args, { threads: count });
}

/** After select(): the smallest selected value and the number of positives in the batch. */
export async function selection(
  device: GPUDevice,
  state: GPUBuffer,
): Promise<{ minSelected: number; positives: number }> {
  const [T, , , , positives] = await readU32(device, state, 5);
  return { minSelected: fromKey(T), positives };
}

/**
 * h = pre where pre > 0 and pre > θ, else 0, for pre [count / cols, cols]: `cols` 1 is one θ for
 * all (BatchTopK at inference), `cols` n one per latent (JumpReLU).
 */
export function threshold(
  rec: Rec,
  { pre, theta, h }: { pre: Binding; theta: Binding; h: Binding },
  { count, cols }: { count: number; cols: number },
): void {
  const name = "batch_topk.threshold";
  requireDims(name, { count, cols });
  if (cols > 1 && count % cols !== 0) {
    throw new RangeError(`${name}: count ${count} is not a whole number of ${cols}-rows`);
  }
  const shape = `count=${count} cols=${cols}`;
  requireValues(name, "pre", pre, count, shape);
  requireValues(name, "theta", theta, cols, shape);
  requireValues(name, "h", h, count, shape);
  kernel.record(rec, "threshold", [pre, theta, h], { count, want: 0, cols }, { threads: count });
}
