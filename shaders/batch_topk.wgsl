// BatchTopK selection while training: keep the K·N largest positive pre-activations of the whole
// batch (N tokens × n latents), found by a radix select on order-preserving u32 keys with a global
// 256-bin histogram, one 8-bit digit a round (hist, then pick, four times), then a mask.
//   state: [prefix T, digit mask, still wanted, round, positives in the batch]
// Values equal to the K·N-th (exact float ties) are all kept. With fewer positives than K·N, every
// positive value is kept; T is then the key of the smallest one, whose value the host reads for
// the running inference threshold.

// Args (count, want, cols) is declared in gpu/batch_topk.ts.

override WG: u32 = 64u;

fn key(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<storage, read> hs_pre: array<f32>;
@group(0) @binding(1) var<storage, read> hs_state: array<u32>;
@group(0) @binding(2) var<storage, read_write> hs_hist: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> hs_a: Args;

@compute @workgroup_size(WG)
fn hist(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= hs_a.count) { return; }
  let v = hs_pre[e];
  if (!(v > 0.0)) { return; }
  let kk = key(v);
  if ((kk & hs_state[1]) == hs_state[0]) {
    atomicAdd(&hs_hist[(kk >> (24u - 8u * hs_state[3])) & 255u], 1u);
  }
}

@group(0) @binding(0) var<storage, read_write> pk_state: array<u32>;
@group(0) @binding(1) var<storage, read_write> pk_hist: array<u32>;
@group(0) @binding(2) var<uniform> pk_a: Args;

@compute @workgroup_size(1)
fn pick() {
  let round = pk_state[3];
  let shift = 24u - 8u * round;
  if (round == 0u) {
    var total = 0u;
    for (var b = 0u; b < 256u; b++) { total += pk_hist[b]; }
    pk_state[4] = total;
    pk_state[2] = min(pk_a.want, total);
  }
  let want = pk_state[2];
  var above = 0u;
  var b = 255u;
  loop {
    let c = pk_hist[b];
    if (above + c >= want || b == 0u) { break; }
    above += c;
    b -= 1u;
  }
  pk_state[0] |= b << shift;
  pk_state[1] |= 255u << shift;
  pk_state[2] = want - above;
  pk_state[3] = round + 1u;
  for (var i = 0u; i < 256u; i++) { pk_hist[i] = 0u; }
}

@group(0) @binding(0) var<storage, read> mk_pre: array<f32>;
@group(0) @binding(1) var<storage, read> mk_state: array<u32>;
@group(0) @binding(2) var<storage, read_write> mk_h: array<f32>;
@group(0) @binding(3) var<uniform> mk_a: Args;

@compute @workgroup_size(WG)
fn mask(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= mk_a.count) { return; }
  let v = mk_pre[e];
  mk_h[e] = select(0.0, v, v > 0.0 && mk_state[4] > 0u && key(v) >= mk_state[0]);
}

// Inference: h = pre where pre > θ (one threshold for all latents), else 0.
@group(0) @binding(0) var<storage, read> th_pre: array<f32>;
@group(0) @binding(1) var<storage, read> th_theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> th_h: array<f32>;
@group(0) @binding(3) var<uniform> th_a: Args;

@compute @workgroup_size(WG)
fn threshold(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= th_a.count) { return; }
  let v = th_pre[e];
  // th_a.cols = 1: one threshold (batchtopk); = n: one per latent (jumprelu).
  let theta = th_theta[select(0u, e % th_a.cols, th_a.cols > 1u)];
  th_h[e] = select(0.0, v, v > 0.0 && v > theta);
}
