// AdamW, as torch.optim.AdamW computes it (non-amsgrad):
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr/bc1) · m / (√v/√bc2 + eps),  bc_i = 1 − β_i^t
// g is the stored gradient times gscale[0] (the clip factor, or 1). The step-dependent scalars come
// in a uniform written each step, so the LR schedule never recompiles the pipeline.

// Hyper is declared in gpu/adamw.ts.

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> h: Hyper;
@group(0) @binding(5) var<storage, read> gscale: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= h.count) {
    return;
  }
  let g = grad[i] * gscale[0];
  let mi = h.beta1 * m[i] + h.one_minus_beta1 * g;
  let vi = h.beta2 * v[i] + h.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) * h.inv_sqrt_bc2 + h.eps;
  param[i] = param[i] * h.decay_factor - h.step_size * mi / denom;
}
