// Per-row top-k of a [rows, cols] matrix: one workgroup per row, a radix select on order-preserving
// u32 keys of the floats (four 8-bit digits, a 256-bin histogram in workgroup memory), so cost grows
// with cols, not cols·k, and k up to 256 over rows of 131072 stays four passes. Ties at the k-th
// value go to the lower index. The k selected (index, value) pairs are written in index order,
// values through ReLU when RELU (TopK SAEs: h = ReLU(TopK(pre))).

// Args (rows, cols, k) is declared in gpu/topk.ts.

@group(0) @binding(0) var<storage, read> pre: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_val: array<f32>;
@group(0) @binding(3) var<uniform> a: Args;

override WG: u32 = 64u;
override RELU: bool = true;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> digit: u32;
var<workgroup> need: u32;
// Per invocation: elements above the threshold key, and equal to it (then exclusive prefix sums).
var<workgroup> n_gt: array<u32, 256>;
var<workgroup> n_eq: array<u32, 256>;

// Larger float ↔ larger key: negative floats have all bits flipped, positive ones the sign bit.
fn key(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= a.rows) { return; }
  let base = row * a.cols;
  let chunk = (a.cols + WG - 1u) / WG;
  let lo = min(lid * chunk, a.cols);
  let hi = min(lo + chunk, a.cols);

  // Find the k-th largest key T one digit at a time, most significant first.
  var prefix = 0u;
  var mask = 0u;
  var want = a.k;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    for (var b = lid; b < 256u; b += WG) { atomicStore(&hist[b], 0u); }
    workgroupBarrier();
    for (var j = lo; j < hi; j++) {
      let kk = key(pre[base + j]);
      if ((kk & mask) == prefix) { atomicAdd(&hist[(kk >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var above = 0u;
      var b = 255u;
      loop {
        let c = atomicLoad(&hist[b]);
        if (above + c >= want || b == 0u) { break; }
        above += c;
        b -= 1u;
      }
      digit = b;
      need = want - above;
    }
    prefix |= workgroupUniformLoad(&digit) << shift;
    want = workgroupUniformLoad(&need);
    mask |= 255u << shift;
  }

  // Everything above T is kept, and the first `want` elements equal to T in index order.
  var gt = 0u;
  var eq = 0u;
  for (var j = lo; j < hi; j++) {
    let kk = key(pre[base + j]);
    gt += select(0u, 1u, kk > prefix);
    eq += select(0u, 1u, kk == prefix);
  }
  n_gt[lid] = gt;
  n_eq[lid] = eq;
  workgroupBarrier();
  if (lid == 0u) {
    var sg = 0u;
    var se = 0u;
    for (var i = 0u; i < WG; i++) {
      let g = n_gt[i];
      let e = n_eq[i];
      n_gt[i] = sg;
      n_eq[i] = se;
      sg += g;
      se += e;
    }
  }
  workgroupBarrier();
  var eq_seen = n_eq[lid];
  var slot = n_gt[lid] + min(eq_seen, want);
  let out0 = row * a.k;
  for (var j = lo; j < hi; j++) {
    let v = pre[base + j];
    let kk = key(v);
    var take = kk > prefix;
    if (kk == prefix) {
      take = eq_seen < want;
      eq_seen++;
    }
    if (take) {
      out_idx[out0 + slot] = j;
      out_val[out0 + slot] = select(v, max(v, 0.0), RELU);
      slot++;
    }
  }
}

// The same selection with one invocation per row: an insertion list of the k largest keys so far
// (equal keys keep the earlier index first, a later equal key never displaces one), then the k
// indices sorted. On CPU adapters (llvmpipe) this beats the radix select for small k: a row's scan
// is one compare per element with no barriers or workgroup atomics. Keys, not floats, are
// compared, so the selection is the radix select's exactly (−0 below +0 included).
const ROW_K_MAX: u32 = 64u;

@compute @workgroup_size(WG)
fn per_row(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= a.rows) { return; }
  let base = row * a.cols;
  let k = a.k;
  var keys: array<u32, ROW_K_MAX>;
  var idx: array<u32, ROW_K_MAX>;
  var have = 0u;
  for (var j = 0u; j < a.cols; j++) {
    let kk = key(pre[base + j]);
    if (have == k && kk <= keys[k - 1u]) { continue; }
    var pos = min(have, k - 1u);
    if (have < k) { have++; }
    while (pos > 0u && keys[pos - 1u] < kk) {
      keys[pos] = keys[pos - 1u];
      idx[pos] = idx[pos - 1u];
      pos--;
    }
    keys[pos] = kk;
    idx[pos] = j;
  }
  for (var s = 1u; s < k; s++) {
    let v = idx[s];
    var r = s;
    while (r > 0u && idx[r - 1u] > v) {
      idx[r] = idx[r - 1u];
      r--;
    }
    idx[r] = v;
  }
  let out0 = row * k;
  for (var s = 0u; s < k; s++) {
    let v = pre[base + idx[s]];
    out_idx[out0 + s] = idx[s];
    out_val[out0 + s] = select(v, max(v, 0.0), RELU);
  }
}
