// Adapters trained on top of a frozen SAE (paper Appendix C–D). They are small (rank r or a
// hidden width h against d_in), so they run on the host next to the LM's loss, in float32 storage
// with float64 accumulation; the SAE and the LM keep the accelerator.

/** A map from x̂ [n, d] to y [n, d] that starts as the identity (zero-initialised output). */
export interface SkipAdapter {
  readonly kind: "linear_skip" | "mlp_skip";
  /** Trainable tensors by name (row-major). */
  readonly params: Record<string, Float32Array>;
  /** y for x̂; keeps what backward needs. */
  forward(xhat: Float32Array, n: number): Float32Array;
  /** Parameter gradients and ∂L/∂x̂ from ∂L/∂y of the last forward. */
  backward(dy: Float32Array): { grads: Record<string, Float32Array>; dxhat: Float32Array };
}

/** C[M,N] (+)= A[M,K]·B[K,N] with options to read A or B transposed (row-major storage). */
export function matmul(
  A: Float32Array,
  B: Float32Array,
  M: number,
  K: number,
  N: number,
  o: { transA?: boolean; transB?: boolean; into?: Float32Array } = {},
): Float32Array {
  const C = o.into ?? new Float32Array(M * N);
  const acc = new Float64Array(N);
  for (let r = 0; r < M; r++) {
    acc.fill(0);
    for (let k = 0; k < K; k++) {
      const a = o.transA ? A[k * M + r] : A[r * K + k];
      if (a === 0) continue;
      if (o.transB) { for (let c = 0; c < N; c++) acc[c] += a * B[c * K + k]; }
      else {
        const row = k * N;
        for (let c = 0; c < N; c++) acc[c] += a * B[row + c];
      }
    }
    for (let c = 0; c < N; c++) C[r * N + c] += acc[c];
  }
  return C;
}

/** Σ over rows of x [n, d]. */
export function colSum(x: Float32Array, n: number, d: number): Float32Array {
  const s = new Float64Array(d);
  for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) s[i] += x[t * d + i];
  return Float32Array.from(s);
}
