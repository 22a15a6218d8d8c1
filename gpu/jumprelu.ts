// JumpReLU's threshold gradient by the straight-through estimator (shaders/jumprelu.wgsl).
import { type Binding, Kernel, type Rec, requireDims, requireValues } from "./kernel.ts";

const kernel = new Kernel({
  name: "jumprelu",
  struct: "Args",
  fields: { rows: "u32", cols: "u32", eps: "f32", lam_n: "f32" },
  wg: 64,
});

/**
 * out[j] = −(1/ε)·Σ_t [|pre[t,j] − θ_j| < ε/2]·(θ_j·dh[t,j] + λ/N) for pre, dh [rows, cols] and
 * θ [cols]; `lamN` is λ/N.
 */
export function thetaGrad(
  rec: Rec,
  { pre, dh, theta, out }: { pre: Binding; dh: Binding; theta: Binding; out: Binding },
  { rows, cols, eps, lamN }: { rows: number; cols: number; eps: number; lamN: number },
): void {
  const name = "jumprelu.theta_grad";
  requireDims(name, { rows, cols });
  if (!(eps > 0)) throw new RangeError(`${name}: bandwidth eps must be > 0, got ${eps}`);
  const shape = `rows=${rows} cols=${cols}`;
  requireValues(name, "pre", pre, rows * cols, shape);
  requireValues(name, "dh", dh, rows * cols, shape);
  requireValues(name, "theta", theta, cols, shape);
  requireValues(name, "out", out, cols, shape);
  kernel.record(rec, "theta_grad", [pre, dh, theta, out], { rows, cols, eps, lam_n: lamN }, {
    threads: cols,
  });
}
