// The auxk term of Gao et al. on the host, shared by the TopK trainers (GPU and CPU) and the
// Matryoshka trainer: the residual e = target − x̂ (detached) is what the dead latents' ê should
// reconstruct; the loss coef·‖ê − e‖² / Σ‖e − ē‖² is normalised by e's variance so its weight does
// not depend on how good the live latents already are.

/**
 * Writes ∂loss/∂ê into `de` and returns the loss, or returns null (and leaves `de` alone) when the
 * residual has no variance: then there is nothing for the dead latents to learn this step.
 */
export function auxkResidual(
  target: ArrayLike<number>,
  xhat: ArrayLike<number>,
  ehat: ArrayLike<number>,
  n: number,
  d: number,
  coef: number,
  de: Float32Array,
): number | null {
  const e = new Float64Array(n * d), mean = new Float64Array(d);
  for (let q = 0; q < n * d; q++) {
    e[q] = target[q] - xhat[q];
    mean[q % d] += e[q] / n;
  }
  let total = 0, se = 0;
  for (let q = 0; q < n * d; q++) {
    total += (e[q] - mean[q % d]) ** 2;
    se += (ehat[q] - e[q]) ** 2;
  }
  if (!(total > 0)) return null;
  const scale = 2 * coef / total;
  for (let q = 0; q < n * d; q++) de[q] = scale * (ehat[q] - e[q]);
  return coef * se / total;
}
