// The decoder constraint step, one workgroup per W_dec row (rows are latents, length d_in):
//   remove_parallel (before the optimizer): g_i ← g_i − (g_i·w_i / ‖w_i‖²) w_i
//   normalize       (after the optimizer):  w_i ← w_i / ‖w_i‖
// Dividing by ‖w_i‖² rather than assuming unit rows keeps the projection exact when rows drift
// between renormalisations. A zero row is left as it is in both (no direction to project on).

// Args (rows, d) is declared in gpu/decoder_norm.ts.

override WG: u32 = 64u;

var<workgroup> acc: array<f32, WG>;
var<workgroup> acc2: array<f32, WG>;

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<uniform> a: Args;

fn row_of(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn remove_parallel(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = row_of(wid, nwg);
  // Uniform control flow: every invocation of a workgroup shares `row`.
  if (row >= a.rows) {
    return;
  }
  let base = row * a.d;
  var gw = 0.0;
  var ww = 0.0;
  for (var j = lid; j < a.d; j = j + WG) {
    let wj = w[base + j];
    gw = gw + g[base + j] * wj;
    ww = ww + wj * wj;
  }
  acc[lid] = gw;
  acc2[lid] = ww;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      acc[lid] = acc[lid] + acc[lid + s];
      acc2[lid] = acc2[lid] + acc2[lid + s];
    }
    workgroupBarrier();
  }
  let wsq = acc2[0];
  if (wsq > 0.0) {
    let c = acc[0] / wsq;
    for (var j = lid; j < a.d; j = j + WG) {
      g[base + j] = g[base + j] - c * w[base + j];
    }
  }
}

@group(0) @binding(0) var<storage, read_write> wn: array<f32>;
@group(0) @binding(1) var<uniform> an: Args;

@compute @workgroup_size(WG)
fn normalize(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = row_of(wid, nwg);
  if (row >= an.rows) {
    return;
  }
  let base = row * an.d;
  var ww = 0.0;
  for (var j = lid; j < an.d; j = j + WG) {
    let wj = wn[base + j];
    ww = ww + wj * wj;
  }
  acc[lid] = ww;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      acc[lid] = acc[lid] + acc[lid + s];
    }
    workgroupBarrier();
  }
  let wsq = acc[0];
  if (wsq > 0.0) {
    let inv = 1.0 / sqrt(wsq);
    for (var j = lid; j < an.d; j = j + WG) {
      wn[base + j] = wn[base + j] * inv;
    }
  }
}
