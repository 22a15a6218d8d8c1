// Reconstruction and sparsity metrics over a batch, on the GPU (no float atomics):
//   col_mean:  μ_j = Σ_t x[t,j] / N                                   (one invocation per dim)
//   row_stats: per token t, 8 floats: ‖x−x̂‖², ‖x−μ‖², ‖x‖², ‖x̂‖², x·x̂, cos, ‖x̂‖/‖x‖, L0
//   finalize:  column sums over tokens → the batch metrics (see gpu/metrics.ts for definitions)
// Firing counts per latent (u32 atomics are allowed, float ones are not):
//   fire_dense:  h [N,n] dense, one invocation per latent: count the tokens where h ≠ 0
//   fire_zero, fire_sparse, fire_update: the same from (idx, val) [N,k] via atomicAdd
//   dead_count:  number of latents whose tokens-since-fired reached the window

// Args (n_tokens, d, width: activation values per token, n (dense) or k (sparse); n_latents;
// dead_window) is declared in gpu/metrics.ts.

const STATS: u32 = 8u;

override WG: u32 = 64u;

var<workgroup> red: array<f32, 512>; // STATS × WG (WG ≤ 64)

fn reduce_stats(lid: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      for (var q = 0u; q < STATS; q = q + 1u) {
        red[q * WG + lid] = red[q * WG + lid] + red[q * WG + lid + s];
      }
    }
    workgroupBarrier();
  }
}

// ---- col_mean
@group(0) @binding(0) var<storage, read> cm_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> cm_mean: array<f32>;
@group(0) @binding(2) var<uniform> cm_a: Args;

@compute @workgroup_size(WG)
fn col_mean(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= cm_a.d) {
    return;
  }
  var s = 0.0;
  for (var t = 0u; t < cm_a.n_tokens; t = t + 1u) {
    s = s + cm_x[t * cm_a.d + j];
  }
  cm_mean[j] = s / f32(cm_a.n_tokens);
}

// ---- row_stats
@group(0) @binding(0) var<storage, read> rs_x: array<f32>;
@group(0) @binding(1) var<storage, read> rs_xhat: array<f32>;
@group(0) @binding(2) var<storage, read> rs_mean: array<f32>;
@group(0) @binding(3) var<storage, read> rs_acts: array<f32>;
@group(0) @binding(4) var<storage, read_write> rs_out: array<f32>;
@group(0) @binding(5) var<uniform> rs_a: Args;

@compute @workgroup_size(WG)
fn row_stats(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= rs_a.n_tokens) {
    return;
  }
  var err2 = 0.0;
  var var2 = 0.0;
  var xx = 0.0;
  var hh = 0.0;
  var xh = 0.0;
  let base = t * rs_a.d;
  for (var j = lid; j < rs_a.d; j = j + WG) {
    let xv = rs_x[base + j];
    let hv = rs_xhat[base + j];
    let e = xv - hv;
    let c = xv - rs_mean[j];
    err2 = err2 + e * e;
    var2 = var2 + c * c;
    xx = xx + xv * xv;
    hh = hh + hv * hv;
    xh = xh + xv * hv;
  }
  var l0 = 0.0;
  let abase = t * rs_a.width;
  for (var j = lid; j < rs_a.width; j = j + WG) {
    if (rs_acts[abase + j] != 0.0) {
      l0 = l0 + 1.0;
    }
  }
  red[0u * WG + lid] = err2;
  red[1u * WG + lid] = var2;
  red[2u * WG + lid] = xx;
  red[3u * WG + lid] = hh;
  red[4u * WG + lid] = xh;
  red[5u * WG + lid] = l0;
  red[6u * WG + lid] = 0.0;
  red[7u * WG + lid] = 0.0;
  reduce_stats(lid);
  if (lid == 0u) {
    let nx = sqrt(red[2u * WG]);
    let nh = sqrt(red[3u * WG]);
    let o = t * STATS;
    rs_out[o + 0u] = red[0u * WG];
    rs_out[o + 1u] = red[1u * WG];
    rs_out[o + 2u] = red[2u * WG];
    rs_out[o + 3u] = red[3u * WG];
    rs_out[o + 4u] = red[4u * WG];
    // torch.cosine_similarity clamps each norm at eps = 1e-8.
    rs_out[o + 5u] = red[4u * WG] / (max(nx, 1e-8) * max(nh, 1e-8));
    // SAELens l2_ratio: a near-zero input norm (< 1e-4) divides by 1 instead.
    rs_out[o + 6u] = nh / select(nx, 1.0, nx < 1e-4);
    rs_out[o + 7u] = red[5u * WG];
  }
}

// ---- finalize
@group(0) @binding(0) var<storage, read> fz_rows: array<f32>;
@group(0) @binding(1) var<storage, read_write> fz_out: array<f32>;
@group(0) @binding(2) var<uniform> fz_a: Args;

@compute @workgroup_size(WG)
fn finalize(@builtin(local_invocation_index) lid: u32) {
  var acc: array<f32, 8>;
  for (var q = 0u; q < STATS; q = q + 1u) {
    acc[q] = 0.0;
  }
  for (var t = lid; t < fz_a.n_tokens; t = t + WG) {
    for (var q = 0u; q < STATS; q = q + 1u) {
      acc[q] = acc[q] + fz_rows[t * STATS + q];
    }
  }
  for (var q = 0u; q < STATS; q = q + 1u) {
    red[q * WG + lid] = acc[q];
  }
  reduce_stats(lid);
  if (lid == 0u) {
    let n = f32(fz_a.n_tokens);
    let err2 = red[0u * WG];
    let var2 = red[1u * WG];
    let fvu = err2 / var2;
    fz_out[0] = err2 / (n * f32(fz_a.d)); // mse, mean over elements
    fz_out[1] = err2 / n; // mse summed over d, mean over tokens
    fz_out[2] = fvu;
    fz_out[3] = 1.0 - fvu; // explained variance
    fz_out[4] = red[5u * WG] / n; // cosine similarity
    fz_out[5] = red[6u * WG] / n; // l2 ratio
    fz_out[6] = red[3u * WG] / red[4u * WG]; // relative reconstruction bias E‖x̂‖²/E[x·x̂]
    fz_out[7] = red[7u * WG] / n; // L0
  }
}

// ---- firing counts
// fire_dense and fire_update share bindings 1–3 (window counts, tokens since fired, args).
@group(0) @binding(0) var<storage, read> fd_h: array<f32>;
@group(0) @binding(0) var<storage, read> fu_batch: array<u32>;
@group(0) @binding(1) var<storage, read_write> fw_window: array<u32>;
@group(0) @binding(2) var<storage, read_write> fw_since: array<u32>;
@group(0) @binding(3) var<uniform> fw_a: Args;

fn saturating_add(a: u32, b: u32) -> u32 {
  return select(a + b, 0xffffffffu, a > 0xffffffffu - b);
}

fn update_latent(i: u32, fired: u32) {
  fw_window[i] = saturating_add(fw_window[i], fired);
  if (fired > 0u) {
    fw_since[i] = 0u;
  } else {
    fw_since[i] = saturating_add(fw_since[i], fw_a.n_tokens);
  }
}

@compute @workgroup_size(WG)
fn fire_dense(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= fw_a.n_latents) {
    return;
  }
  var c = 0u;
  for (var t = 0u; t < fw_a.n_tokens; t = t + 1u) {
    if (fd_h[t * fw_a.n_latents + i] != 0.0) {
      c = c + 1u;
    }
  }
  update_latent(i, c);
}

@compute @workgroup_size(WG)
fn fire_update(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < fw_a.n_latents) {
    update_latent(i, fu_batch[i]);
  }
}

@group(0) @binding(0) var<storage, read_write> fz_batch: array<u32>;
@group(0) @binding(1) var<uniform> fzb_a: Args;

@compute @workgroup_size(WG)
fn fire_zero(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < fzb_a.n_latents) {
    fz_batch[i] = 0u;
  }
}

@group(0) @binding(0) var<storage, read> fs_idx: array<u32>;
@group(0) @binding(1) var<storage, read> fs_val: array<f32>;
@group(0) @binding(2) var<storage, read_write> fs_batch: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> fs_a: Args;

@compute @workgroup_size(WG)
fn fire_sparse(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= fs_a.n_tokens * fs_a.width) {
    return;
  }
  let i = fs_idx[e];
  if (fs_val[e] != 0.0 && i < fs_a.n_latents) {
    atomicAdd(&fs_batch[i], 1u);
  }
}

@group(0) @binding(0) var<storage, read> dc_since: array<u32>;
@group(0) @binding(1) var<storage, read_write> dc_out: array<u32>;
@group(0) @binding(2) var<uniform> dc_a: Args;

var<workgroup> ured: array<u32, 64>;

@compute @workgroup_size(WG)
fn dead_count(@builtin(local_invocation_index) lid: u32) {
  var c = 0u;
  for (var i = lid; i < dc_a.n_latents; i = i + WG) {
    if (dc_since[i] >= dc_a.dead_window) {
      c = c + 1u;
    }
  }
  ured[lid] = c;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      ured[lid] = ured[lid] + ured[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    dc_out[0] = ured[0];
  }
}
