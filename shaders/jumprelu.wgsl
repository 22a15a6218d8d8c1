// JumpReLU's threshold gradient by the straight-through estimator of Rajamanoharan et al. (2024),
// rectangle kernel K(u) = 1[|u| < ½] of bandwidth ε. With h = pre·H(pre − θ) and the sparsity term
// λ·(1/N)·Σ_t Σ_j H(pre_tj − θ_j):
//   ∂L/∂θ_j = Σ_t −(1/ε)·K((pre_tj − θ_j)/ε)·(θ_j·∂L/∂h_tj + λ/N)
// (the gradient to pre passes where pre > θ, as for ReLU, and is applied by mask_grad).
// Args (rows, cols, eps, lam_n) is declared in gpu/jumprelu.ts.

@group(0) @binding(0) var<storage, read> pre: array<f32>;
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> a: Args;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn theta_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * WG;
  if (j >= a.cols) { return; }
  let th = theta[j];
  var s = 0.0;
  for (var t = 0u; t < a.rows; t++) {
    let e = t * a.cols + j;
    if (abs(pre[e] - th) < 0.5 * a.eps) { s += th * dh[e] + a.lam_n; }
  }
  out[j] = -s / a.eps;
}
