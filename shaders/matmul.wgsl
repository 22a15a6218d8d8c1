// C[M,N] = op(A)·op(B) (+ bias[N]), row-major. op(A) = A [M,K] or, with TRANS_A, A stored [K,M];
// op(B) = B [K,N] or, with TRANS_B, B stored [N,K]. Each invocation computes a TM×TN tile in
// registers with no workgroup barriers: what runs well on CPU-backed adapters (llvmpipe).

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
const TM: u32 = 4u;
const TN: u32 = 4u;

// Dims (M, N, K) is declared in gpu/matmul.ts.

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

fn a_at(r: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[k * dims.M + r]; }
  return A[r * dims.K + k];
}

fn b_at(k: u32, c: u32) -> f32 {
  if (TRANS_B) { return B[c * dims.K + k]; }
  return B[k * dims.N + c];
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r0 = gid.y * TM;
  let c0 = gid.x * TN;
  if (r0 >= dims.M || c0 >= dims.N) { return; }
  var acc: array<array<f32, TN>, TM>;
  let full = r0 + TM <= dims.M && c0 + TN <= dims.N;
  for (var k = 0u; k < dims.K; k++) {
    var a: array<f32, TM>;
    var b: array<f32, TN>;
    for (var i = 0u; i < TM; i++) { a[i] = select(0.0, a_at(min(r0 + i, dims.M - 1u), k), full || r0 + i < dims.M); }
    for (var j = 0u; j < TN; j++) { b[j] = select(0.0, b_at(k, min(c0 + j, dims.N - 1u)), full || c0 + j < dims.N); }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = r0 + i;
    if (r >= dims.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let c = c0 + j;
      if (c >= dims.N) { break; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += bias[c]; }
      C[r * dims.N + c] = v;
    }
  }
}
