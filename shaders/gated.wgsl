// The gated SAE's own element-wise and reduction steps (Rajamanoharan et al. 2024); the matmuls are
// shaders/matmul.wgsl and the rest shaders/sae_dense.wgsl. W_mag = W_enc·diag(exp(r_mag)) shares
// W_enc's product u = (x − b_dec)·W_enc, so the magnitude path needs no matmul of its own:
//   π_gate = u + b_gate,  π_mag = exp(r_mag)·u + b_mag,  f = 1[π_gate > 0]·ReLU(π_mag).
// Args (rows, cols, a) is declared in gpu/gated.ts; rows × cols is [tokens, d_sae].

override WG: u32 = 64u;

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// f and ReLU(π_gate) (the gate's activation, which the L1 and auxiliary terms read).
@group(0) @binding(0) var<storage, read> en_u: array<f32>;
@group(0) @binding(1) var<storage, read> en_bgate: array<f32>;
@group(0) @binding(2) var<storage, read> en_rmag: array<f32>;
@group(0) @binding(3) var<storage, read> en_bmag: array<f32>;
@group(0) @binding(4) var<storage, read_write> en_f: array<f32>;
@group(0) @binding(5) var<storage, read_write> en_gate: array<f32>;
@group(0) @binding(6) var<uniform> en_a: Args;

@compute @workgroup_size(WG)
fn encode(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= en_a.rows * en_a.cols) { return; }
  let j = e % en_a.cols;
  let u = en_u[e];
  let gate = u + en_bgate[j];
  let mag = exp(en_rmag[j]) * u + en_bmag[j];
  en_f[e] = select(0.0, max(mag, 0.0), gate > 0.0);
  en_gate[e] = max(gate, 0.0);
}

// The gradients at the pre-activations, no gradient through the step 1[π_gate > 0]:
//   ∂π_mag = ∂f·1[f > 0]                       (in place of ∂f in pg_dh)
//   ∂π_gate = (∂gate + a·‖W_dec,j‖)·1[π_gate > 0]  (in place of ∂gate, the auxiliary term's, in
//                                                pg_dg; a = λ/N, the L1 term's)
//   ∂u = ∂π_gate + exp(r_mag)·∂π_mag
@group(0) @binding(0) var<storage, read> pg_f: array<f32>;
@group(0) @binding(1) var<storage, read> pg_gate: array<f32>;
@group(0) @binding(2) var<storage, read> pg_norms: array<f32>;
@group(0) @binding(3) var<storage, read> pg_rmag: array<f32>;
@group(0) @binding(4) var<storage, read_write> pg_dh: array<f32>;
@group(0) @binding(5) var<storage, read_write> pg_dg: array<f32>;
@group(0) @binding(6) var<storage, read_write> pg_du: array<f32>;
@group(0) @binding(7) var<uniform> pg_a: Args;

@compute @workgroup_size(WG)
fn pre_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= pg_a.rows * pg_a.cols) { return; }
  let j = e % pg_a.cols;
  let dmag = select(0.0, pg_dh[e], pg_f[e] > 0.0);
  let dgate = select(0.0, pg_dg[e] + pg_a.a * pg_norms[j], pg_gate[e] > 0.0);
  pg_dh[e] = dmag;
  pg_dg[e] = dgate;
  pg_du[e] = dgate + exp(pg_rmag[j]) * dmag;
}

// ∂r_mag[j] = exp(r_mag[j])·Σ_t ∂π_mag[t, j]·u[t, j]
@group(0) @binding(0) var<storage, read> rg_dmag: array<f32>;
@group(0) @binding(1) var<storage, read> rg_u: array<f32>;
@group(0) @binding(2) var<storage, read> rg_rmag: array<f32>;
@group(0) @binding(3) var<storage, read_write> rg_out: array<f32>;
@group(0) @binding(4) var<uniform> rg_a: Args;

@compute @workgroup_size(WG)
fn r_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(gid, nwg);
  if (j >= rg_a.cols) { return; }
  var s = 0.0;
  for (var t = 0u; t < rg_a.rows; t++) {
    let e = t * rg_a.cols + j;
    s += rg_dmag[e] * rg_u[e];
  }
  rg_out[j] = exp(rg_rmag[j]) * s;
}
