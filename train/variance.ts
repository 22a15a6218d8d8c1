// FVU's denominator, shared by the MSE phase's and the fine-tune's metrics.
/** Variance of x [n, d] about its per-dimension mean, averaged over elements (FVU's denominator). */
export function varianceOf(x: Float32Array, d: number): number {
  const n = x.length / d, mu = new Float64Array(d);
  for (let e = 0; e < x.length; e++) mu[e % d] += x[e];
  for (let j = 0; j < d; j++) mu[j] /= n;
  let s = 0;
  for (let e = 0; e < x.length; e++) s += (x[e] - mu[e % d]) ** 2;
  return s / x.length;
}
