// Gradient checks: the emitted gradient graph, run in the float64 reference, against central finite
// differences of the forward graph; and the float32 gradient graph in ORT against the reference.
import { assert } from "@std/assert";
import { DataType, encodeModel, type ModelProto } from "../../lm/onnx.ts";
import { buildGradient } from "../../lm/autodiff/builder.ts";
import { type ETensor, numel } from "../../lm/autodiff/eval.ts";
import { createSession, type ExecutionProvider, ort } from "../../lm/session.ts";
import { runReference } from "./onnx_interp.ts";
import { relError, type Rng } from "./rand.ts";

export type Feeds = Record<string, ETensor>;

/** Largest |analytic − fd| over sampled elements, scaled by max(1, max|fd|). */
export function finiteDifferenceError(
  model: ModelProto,
  loss: string,
  feeds: Feeds,
  wrt: string,
  analytic: Float64Array,
  rng: Rng,
  opts: { h?: number; samples?: number } = {},
): { err: number; fdNorm: number } {
  const h = opts.h ?? 1e-6;
  const base = feeds[wrt];
  const n = base.data!.length;
  const idx = n <= (opts.samples ?? 48)
    ? [...Array(n).keys()]
    : Array.from({ length: opts.samples ?? 48 }, () => rng.int(n));
  const lossAt = (i: number, d: number) => {
    const data = Float64Array.from(base.data!);
    data[i] += d;
    const out = runReference(model, { ...feeds, [wrt]: { ...base, data } }, [loss]);
    return out[loss].data![0];
  };
  let worst = 0, fdMax = 0;
  const fds = idx.map((i) => (lossAt(i, h) - lossAt(i, -h)) / (2 * h));
  for (const f of fds) fdMax = Math.max(fdMax, Math.abs(f));
  idx.forEach((i, k) => {
    const e = Math.abs(analytic[i] - fds[k]) / Math.max(1, fdMax);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  });
  return { err: worst, fdNorm: fdMax };
}

/** Checks d loss / d wrt of a float64 model against finite differences; returns the gradients. */
export function checkGradient64(
  model: ModelProto,
  loss: string,
  wrt: string[],
  feeds: Feeds,
  rng: Rng,
  tol = 1e-6,
): Record<string, Float64Array> {
  const gm = buildGradient(model, { loss, wrt });
  const out = runReference(gm, feeds, wrt.map((w) => `${w}_grad`));
  const grads: Record<string, Float64Array> = {};
  for (const w of wrt) {
    const g = out[`${w}_grad`];
    assert(
      g.dims.join() === feeds[w].dims.join(),
      `${w}_grad has dims [${g.dims}], want [${feeds[w].dims}]`,
    );
    const { err, fdNorm } = finiteDifferenceError(model, loss, feeds, w, g.data!, rng);
    assert(fdNorm > 1e-8, `the loss does not depend on ${w} (finite differences are all ~0)`);
    assert(
      err <= tol,
      `∂${loss}/∂${w}: analytic vs finite differences scaled error ${err} > ${tol}`,
    );
    grads[w] = g.data!;
  }
  return grads;
}

export function toOrt(t: ETensor, dtype: number): ort.Tensor {
  if (dtype === DataType.FLOAT) {
    return new ort.Tensor("float32", Float32Array.from(t.data!), t.dims);
  }
  if (dtype === DataType.DOUBLE) {
    return new ort.Tensor("float64", Float64Array.from(t.data!), t.dims);
  }
  if (dtype === DataType.INT64) {
    return new ort.Tensor(
      "int64",
      BigInt64Array.from(Array.from(t.data!, (v) => BigInt(v))),
      t.dims,
    );
  }
  if (dtype === DataType.BOOL) return new ort.Tensor("bool", Uint8Array.from(t.data!), t.dims);
  throw new Error(`toOrt: dtype ${dtype}`);
}

/** Runs the float32 gradient graph in ORT and compares with reference gradients. */
export async function checkGradientOrt(
  model32: ModelProto,
  loss: string,
  wrt: string[],
  feeds: Feeds,
  want: Record<string, Float64Array>,
  ep: ExecutionProvider = "wasm",
  device?: GPUDevice,
  tol = 1e-4,
): Promise<void> {
  const gm = buildGradient(model32, { loss, wrt });
  const s = await createSession(encodeModel(gm), { ep, device });
  try {
    const types = new Map(
      model32.graph!.input!.map((i) => [i.name!, i.type!.tensorType!.elemType!]),
    );
    const f: Record<string, ort.Tensor> = {};
    for (const name of s.inputNames) f[name] = toOrt(feeds[name], types.get(name)!);
    const out = await s.run(f);
    for (const w of wrt) {
      const got = out[`${w}_grad`];
      assert(got, `ORT returned no ${w}_grad`);
      const data = got.data as Float32Array;
      assert(numel(got.dims as number[]) === want[w].length, `${w}_grad size differs`);
      const e = relError(data, want[w]);
      assert(e <= tol, `${ep} ∂${loss}/∂${w}: relative error ${e} > ${tol}`);
    }
  } finally {
    await s.release();
  }
}
