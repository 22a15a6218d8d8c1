// Matryoshka SAE: nested prefixes of the latents, prefix g being latents [0, ends[g]). Every
// prefix reconstructs x on its own, x̂_g = b_dec + Σ_{j<ends[g]} h_j·W_dec,j, and the loss adds the
// prefixes' MSE. Latent j of group g (ends[g−1] ≤ j < ends[g]) is in prefixes g..G−1, so its
// gradient reads the suffix sum S_g = Σ_{i≥g} ∂L/∂x̂_i: one pass per token and coordinate builds
// every S_g, and each latent then reads only its own group's. The decode and the weight gradients
// read lists of the codes' nonzeros (compact_rows, compact_cols) rather than whole rows.
//   xs: [G, n, d] (prefix reconstructions, then suffix sums), h: [n, m], W_dec: [m, d].

// Args (n, d, m, groups, a, b) is declared in gpu/matryoshka.ts.

override WG: u32 = 64u;

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read> ends: array<u32>;
@group(0) @binding(4) var<storage, read> in3: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Args;

/** The group of latent j: the first g with j < ends[g]. */
fn group_of(j: u32) -> u32 {
  var g = 0u;
  while (g + 1u < p.groups && j >= ends[g]) { g++; }
  return g;
}

// The nonzero codes of each token, in latent order: row t of `list` (m + 1 words from t·(m+1))
// holds the count, then the latents. in0 = h. BatchTopK leaves a token with a few
// codes among thousands of latents: the decode then reads those instead of a whole row per output.
@group(0) @binding(5) var<storage, read_write> cr_list: array<u32>;

@compute @workgroup_size(WG)
fn compact_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat(gid, nwg);
  if (t >= p.n) { return; }
  let base = t * (p.m + 1u);
  var c = 0u;
  for (var j = 0u; j < p.m; j++) {
    if (in0[t * p.m + j] != 0.0) {
      cr_list[base + 1u + c] = j;
      c++;
    }
  }
  cr_list[base] = c;
}

// out[g, t, i] = b_dec[i] + Σ_{j<ends[g]} h[t, j]·W_dec[j, i] from compact_rows' list (binding 0),
// in1 = W_dec, in2 = b_dec, in3 = h: one running sum per (t, i) over the token's codes in latent order,
// stored at each group's end.
@group(0) @binding(0) var<storage, read> pd_list: array<u32>;

@compute @workgroup_size(WG)
fn prefix_decode(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= p.n * p.d) { return; }
  let t = e / p.d;
  let i = e % p.d;
  let base = t * (p.m + 1u);
  let count = pd_list[base];
  var acc = in2[i];
  var c = 0u;
  for (var g = 0u; g < p.groups; g++) {
    let end = ends[g];
    for (; c < count; c++) {
      let j = pd_list[base + 1u + c];
      if (j >= end) { break; }
      acc += in3[t * p.m + j] * in1[j * p.d + i];
    }
    out[g * p.n * p.d + e] = acc;
  }
}

// out[g, t, i] = b·gExt[t, i] + Σ_{q≥g} a·(x̂_q[t, i] − x[t, i]): ∂L/∂x̂ summed over the prefixes a
// latent of group g is in (a = w·2/(n·d) of the MSE, b = the weight of ⟨gExt, x̂_{G−1}⟩, the
// full reconstruction's external gradient). in0 = x̂ [G, n, d], in1 = x, in2 = gExt.
@compute @workgroup_size(WG)
fn suffix_residual(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  let nd = p.n * p.d;
  if (e >= nd) { return; }
  var acc = 0.0;
  if (p.b != 0.0) { acc = p.b * in2[e]; }
  let xe = in1[e];
  for (var q = p.groups; q > 0u; q--) {
    let g = q - 1u;
    acc += p.a * (in0[g * nd + e] - xe);
    out[g * nd + e] = acc;
  }
}

// out[t, j] = [h[t, j] > 0]·Σ_i S_g(j)[t, i]·W_dec[j, i]; in0 = S [G, n, d], in1 = W_dec, in2 = h.
@compute @workgroup_size(WG)
fn latent_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= p.n * p.m) { return; }
  let t = e / p.m;
  let j = e % p.m;
  if (!(in2[e] > 0.0)) {
    out[e] = 0.0;
    return;
  }
  let s = (group_of(j) * p.n + t) * p.d;
  var acc = 0.0;
  for (var i = 0u; i < p.d; i++) { acc += in0[s + i] * in1[j * p.d + i]; }
  out[e] = acc;
}

// The tokens where each latent's code is nonzero, in token order: row j of `list` (n + 1 words
// from j·(n+1)) holds the count, then the tokens. in0 = [n, m] codes (h, or ∂L/∂pre, whose
// nonzeros the encoder gradient sums over).
@group(0) @binding(5) var<storage, read_write> cc_list: array<u32>;

@compute @workgroup_size(WG)
fn compact_cols(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(gid, nwg);
  if (j >= p.m) { return; }
  let base = j * (p.n + 1u);
  var c = 0u;
  for (var t = 0u; t < p.n; t++) {
    if (in0[t * p.m + j] != 0.0) {
      cc_list[base + 1u + c] = t;
      c++;
    }
  }
  cc_list[base] = c;
}

@group(0) @binding(2) var<storage, read> cl_list: array<u32>;

// out[j, i] = Σ_t h[t, j]·S_g(j)[t, i] over compact_cols(h); in0 = h, in1 = S [G, n, d].
@compute @workgroup_size(WG)
fn decoder_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= p.m * p.d) { return; }
  let j = e / p.d;
  let i = e % p.d;
  let s = group_of(j) * p.n * p.d;
  let base = j * (p.n + 1u);
  let count = cl_list[base];
  var acc = 0.0;
  for (var c = 0u; c < count; c++) {
    let t = cl_list[base + 1u + c];
    acc += in0[t * p.m + j] * in1[s + t * p.d + i];
  }
  out[e] = acc;
}

// out[i, j] = Σ_t xc[t, i]·dh[t, j] over compact_cols(dh): ∂L/∂W_enc [d, m]; in0 = xc [n, d],
// in1 = dh [n, m].
@compute @workgroup_size(WG)
fn encoder_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(gid, nwg);
  if (e >= p.d * p.m) { return; }
  let i = e / p.m;
  let j = e % p.m;
  let base = j * (p.n + 1u);
  let count = cl_list[base];
  var acc = 0.0;
  for (var c = 0u; c < count; c++) {
    let t = cl_list[base + 1u + c];
    acc += in0[t * p.d + i] * in1[t * p.m + j];
  }
  out[e] = acc;
}
