// Sparse TopK SAE kernels over K (index, value) pairs per token (from shaders/topk.wgsl): decode
// gathers K decoder rows per token, and the backward touches only active latents. WGSL has no float
// atomics, so weight gradients are sums over a latent → entries index built here (count, scan,
// scatter, then each bucket sorted so sums run in one fixed order and a step is reproducible):
//   decode       x̂[t,i] = b_dec[i] + Σ_s val[t,s]·W_dec[idx[t,s], i]
//   dval         dval[t,s] = [val > 0]·Σ_i dx̂[t,i]·W_dec[idx[t,s], i]   (∂ through ReLU at pre)
//   count        count[j] = #entries with latent j and val > 0
//   scan         offs = exclusive prefix sum of count (m + 1 values)
//   scatter      list[offs[j] ..] = entries e = t·k + s of latent j
//   sort         each bucket into increasing e (= increasing token)
//   grad_w       ∂W[j,i] = Σ_{e ∈ bucket j} coef[e]·rows[t(e), i]; written [j,i] (W_dec: coef = val,
//                rows = dx̂) or [i,j] (W_enc: coef = dval, rows = x − b_dec) by a.transposed
//   grad_b       ∂b_enc[j] = Σ_{e ∈ bucket j} dval[e]
//   mask_dead    pre with every latent that is not dead set to −FLT_MAX (input of the auxk top-k)
// grad_w and grad_b add to their output when a.accumulate is set (the auxk terms).

// Args (n, d, m, k, transposed, accumulate, window) is declared in gpu/sae_sparse.ts.

override WG: u32 = 64u;

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<storage, read> dc_idx: array<u32>;
@group(0) @binding(1) var<storage, read> dc_val: array<f32>;
@group(0) @binding(2) var<storage, read> dc_w: array<f32>;
@group(0) @binding(3) var<storage, read> dc_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> dc_out: array<f32>;
@group(0) @binding(5) var<uniform> dc_a: Args;

@compute @workgroup_size(WG)
fn decode(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= dc_a.n * dc_a.d) { return; }
  let t = e / dc_a.d;
  let i = e - t * dc_a.d;
  var acc = dc_b[i];
  for (var s = 0u; s < dc_a.k; s++) {
    let v = dc_val[t * dc_a.k + s];
    if (v != 0.0) { acc = fma(v, dc_w[dc_idx[t * dc_a.k + s] * dc_a.d + i], acc); }
  }
  dc_out[e] = acc;
}

@group(0) @binding(0) var<storage, read> dv_idx: array<u32>;
@group(0) @binding(1) var<storage, read> dv_val: array<f32>;
@group(0) @binding(2) var<storage, read> dv_dx: array<f32>;
@group(0) @binding(3) var<storage, read> dv_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> dv_out: array<f32>;
@group(0) @binding(5) var<uniform> dv_a: Args;

@compute @workgroup_size(WG)
fn dval(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= dv_a.n * dv_a.k) { return; }
  if (!(dv_val[e] > 0.0)) {
    dv_out[e] = 0.0;
    return;
  }
  let t = e / dv_a.k;
  let row = dv_idx[e] * dv_a.d;
  var acc = 0.0;
  for (var i = 0u; i < dv_a.d; i++) { acc = fma(dv_dx[t * dv_a.d + i], dv_w[row + i], acc); }
  dv_out[e] = acc;
}

@group(0) @binding(0) var<storage, read> ct_idx: array<u32>;
@group(0) @binding(1) var<storage, read> ct_val: array<f32>;
@group(0) @binding(2) var<storage, read_write> ct_count: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> ct_a: Args;

@compute @workgroup_size(WG)
fn count(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= ct_a.n * ct_a.k || !(ct_val[e] > 0.0)) { return; }
  atomicAdd(&ct_count[ct_idx[e]], 1u);
}

@group(0) @binding(0) var<storage, read> sc_count: array<u32>;
@group(0) @binding(1) var<storage, read_write> sc_offs: array<u32>;
@group(0) @binding(2) var<uniform> sc_a: Args;

const SCAN_WG: u32 = 256u;
var<workgroup> sc_part: array<u32, SCAN_WG>;

// One workgroup: each invocation scans a contiguous chunk of latents.
@compute @workgroup_size(SCAN_WG)
fn scan(@builtin(local_invocation_index) lid: u32) {
  let chunk = (sc_a.m + SCAN_WG - 1u) / SCAN_WG;
  let lo = min(lid * chunk, sc_a.m);
  let hi = min(lo + chunk, sc_a.m);
  var s = 0u;
  for (var j = lo; j < hi; j++) { s += sc_count[j]; }
  sc_part[lid] = s;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0u;
    for (var i = 0u; i < SCAN_WG; i++) {
      let c = sc_part[i];
      sc_part[i] = run;
      run += c;
    }
    sc_offs[sc_a.m] = run;
  }
  workgroupBarrier();
  var run = sc_part[lid];
  for (var j = lo; j < hi; j++) {
    sc_offs[j] = run;
    run += sc_count[j];
  }
}

@group(0) @binding(0) var<storage, read> sx_idx: array<u32>;
@group(0) @binding(1) var<storage, read> sx_val: array<f32>;
@group(0) @binding(2) var<storage, read> sx_offs: array<u32>;
@group(0) @binding(3) var<storage, read_write> sx_cursor: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> sx_list: array<u32>;
@group(0) @binding(5) var<uniform> sx_a: Args;

@compute @workgroup_size(WG)
fn scatter(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= sx_a.n * sx_a.k || !(sx_val[e] > 0.0)) { return; }
  let j = sx_idx[e];
  sx_list[sx_offs[j] + atomicAdd(&sx_cursor[j], 1u)] = e;
}

@group(0) @binding(0) var<storage, read> so_offs: array<u32>;
@group(0) @binding(1) var<storage, read_write> so_list: array<u32>;
@group(0) @binding(2) var<uniform> so_a: Args;

// Insertion sort per bucket: buckets hold one entry per token at most, and the scatter leaves them
// close to ordered, so this is cheap next to the gradient sums over the same entries.
@compute @workgroup_size(WG)
fn sort(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(gid, nwg);
  if (j >= so_a.m) { return; }
  let lo = so_offs[j];
  let hi = so_offs[j + 1u];
  for (var q = lo + 1u; q < hi; q++) {
    let v = so_list[q];
    var r = q;
    while (r > lo && so_list[r - 1u] > v) {
      so_list[r] = so_list[r - 1u];
      r--;
    }
    so_list[r] = v;
  }
}

@group(0) @binding(0) var<storage, read> gw_offs: array<u32>;
@group(0) @binding(1) var<storage, read> gw_list: array<u32>;
@group(0) @binding(2) var<storage, read> gw_coef: array<f32>;
@group(0) @binding(3) var<storage, read> gw_rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> gw_out: array<f32>;
@group(0) @binding(5) var<uniform> gw_a: Args;

@compute @workgroup_size(WG)
fn grad_w(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= gw_a.m * gw_a.d) { return; }
  let j = e / gw_a.d;
  let i = e - j * gw_a.d;
  var acc = 0.0;
  for (var q = gw_offs[j]; q < gw_offs[j + 1u]; q++) {
    let entry = gw_list[q];
    acc = fma(gw_coef[entry], gw_rows[(entry / gw_a.k) * gw_a.d + i], acc);
  }
  let o = select(e, i * gw_a.m + j, gw_a.transposed != 0u);
  gw_out[o] = select(acc, gw_out[o] + acc, gw_a.accumulate != 0u);
}

@group(0) @binding(0) var<storage, read> gb_offs: array<u32>;
@group(0) @binding(1) var<storage, read> gb_list: array<u32>;
@group(0) @binding(2) var<storage, read> gb_coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> gb_out: array<f32>;
@group(0) @binding(4) var<uniform> gb_a: Args;

@compute @workgroup_size(WG)
fn grad_b(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(gid, nwg);
  if (j >= gb_a.m) { return; }
  var acc = 0.0;
  for (var q = gb_offs[j]; q < gb_offs[j + 1u]; q++) { acc += gb_coef[gb_list[q]]; }
  gb_out[j] = select(acc, gb_out[j] + acc, gb_a.accumulate != 0u);
}

@group(0) @binding(0) var<storage, read> md_pre: array<f32>;
@group(0) @binding(1) var<storage, read> md_since: array<u32>;
@group(0) @binding(2) var<storage, read_write> md_out: array<f32>;
@group(0) @binding(3) var<uniform> md_a: Args;

@compute @workgroup_size(WG)
fn mask_dead(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= md_a.n * md_a.m) { return; }
  md_out[e] = select(-3.4028235e38, md_pre[e], md_since[e % md_a.m] >= md_a.window);
}
