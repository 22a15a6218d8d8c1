// Global gradient norm over many buffers, in two stages without float atomics:
//   partial:  each workgroup writes the sum of squares of its strided slice of one buffer chunk
//   finalize: one workgroup sums all partials → out = [scale, norm],
//             scale = min(1, max_norm / (norm + 1e-6))   (torch.nn.utils.clip_grad_norm_)
//   scale:    g ← g · out[0], in place
// The result stays on the GPU; AdamW can read out[0] directly instead of running `scale`.

// Args (count, base, max_norm; declared in gpu/grad_norm.ts): partial and scale read count (values
// in the chunk) and base (index in `partials` of the chunk's first workgroup); finalize reads count
// (partials in all) and max_norm (≤ 0 means "measure only": scale 1).

override WG: u32 = 256u;

var<workgroup> acc: array<f32, WG>;

fn tree_sum(lid: u32) -> f32 {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      acc[lid] = acc[lid] + acc[lid + s];
    }
    workgroupBarrier();
  }
  return acc[0];
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> pa: Args;

@compute @workgroup_size(WG)
fn partial(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  var s = 0.0;
  let stride = nwg.x * WG;
  for (var i = wid.x * WG + lid; i < pa.count; i = i + stride) {
    let g = grad[i];
    s = s + g * g;
  }
  acc[lid] = s;
  let total = tree_sum(lid);
  if (lid == 0u) {
    partials[pa.base + wid.x] = total;
  }
}

@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> fa: Args;

@compute @workgroup_size(WG)
fn finalize(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < fa.count; i = i + WG) {
    s = s + parts[i];
  }
  acc[lid] = s;
  let total = tree_sum(lid);
  if (lid == 0u) {
    let norm = sqrt(total);
    var scale = 1.0;
    if (fa.max_norm > 0.0) {
      scale = min(1.0, fa.max_norm / (norm + 1e-6));
    }
    out[0] = scale;
    out[1] = norm;
  }
}

@group(0) @binding(0) var<storage, read_write> g_inout: array<f32>;
@group(0) @binding(1) var<storage, read> factor: array<f32>;
@group(0) @binding(2) var<uniform> sa: Args;

@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < sa.count) {
    g_inout[i] = g_inout[i] * factor[0];
  }
}
