// Element-wise and reduction kernels of the dense SAE step (the matmuls are shaders/matmul.wgsl).
// Shapes come in P (declared in gpu/sae_dense.ts): rows × cols is the matrix an entry walks; a, b
// are scalars of the entry.

@group(0) @binding(0) var<storage, read> in0: array<f32>;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: P;

override WG: u32 = 64u;
const K_MAX: u32 = 256u;

fn flat(g: vec3u, nwg: vec3u) -> u32 { return g.x + g.y * nwg.x * WG; }

// out[t, i] = in0[t, i] − in1[i]   (x − b_dec)
@compute @workgroup_size(WG) fn center(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(g, nwg);
  if (e >= p.rows * p.cols) { return; }
  out[e] = in0[e] - in1[e % p.cols];
}

// Per row of pre (in0): keep the k largest values (ties to the lower index), then ReLU; others 0.
@compute @workgroup_size(WG) fn topk_relu(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat(g, nwg);
  if (t >= p.rows) { return; }
  let base = t * p.cols;
  var vals: array<f32, K_MAX>;
  var idx: array<u32, K_MAX>;
  var have = 0u;
  for (var j = 0u; j < p.cols; j++) {
    let v = in0[base + j];
    out[base + j] = 0.0;
    if (have == p.k && v <= vals[have - 1u]) { continue; }
    // Insert v keeping vals sorted descending; equal values keep the earlier index first.
    var pos = min(have, p.k - 1u);
    if (have < p.k) { have++; }
    while (pos > 0u && vals[pos - 1u] < v) {
      vals[pos] = vals[pos - 1u];
      idx[pos] = idx[pos - 1u];
      pos--;
    }
    vals[pos] = v;
    idx[pos] = j;
  }
  for (var i = 0u; i < have; i++) { out[base + idx[i]] = max(vals[i], 0.0); }
}

@compute @workgroup_size(WG) fn relu(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(g, nwg);
  if (e >= p.rows * p.cols) { return; }
  out[e] = max(in0[e], 0.0);
}

// dx̂ = a·(x̂ − x) + b·g   with a = wMse·2/(N·d): in0 = x̂, in1 = x, out holds g on entry. With
// b = 0 g is not read, so a step without ∂KL/∂x̂ needs no zeroed buffer.
@compute @workgroup_size(WG) fn dxhat(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(g, nwg);
  if (e >= p.rows * p.cols) { return; }
  var v = p.a * (in0[e] - in1[e]);
  if (p.b != 0.0) { v += p.b * out[e]; }
  out[e] = v;
}

// out += in0 (in1 unused): one gradient added into another (auxk's, a skip connection's output).
@compute @workgroup_size(WG) fn add_into(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(g, nwg);
  if (e >= p.rows * p.cols) { return; }
  out[e] = out[e] + in0[e];
}

// dpre = (dh + a·norm[j]) · [h > 0]: in0 = h, in1 = decoder row norms; out holds dh on entry.
@compute @workgroup_size(WG) fn mask_grad(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(g, nwg);
  if (e >= p.rows * p.cols) { return; }
  out[e] = select(0.0, out[e] + p.a * in1[e % p.cols], in0[e] > 0.0);
}

// out[j] = Σ_t in0[t, j]
@compute @workgroup_size(WG) fn col_sum(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(g, nwg);
  if (j >= p.cols) { return; }
  var s = 0.0;
  for (var t = 0u; t < p.rows; t++) { s += in0[t * p.cols + j]; }
  out[j] = s;
}

// ∂b_dec[i] = out[i] − Σ_j W_enc[i, j]·∂b_enc[j]: in0 = W_enc [rows=d, cols=n], in1 = ∂b_enc; out
// holds Σ_t dx̂[t, i] on entry (b_dec enters both the decoder output and the encoder input).
@compute @workgroup_size(WG) fn bdec_grad(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(g, nwg);
  if (i >= p.rows) { return; }
  var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += in0[i * p.cols + j] * in1[j]; }
  out[i] = out[i] - s;
}

// out[j] = ‖in0[j, :]‖   (decoder row norms)
@compute @workgroup_size(WG) fn row_norms(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(g, nwg);
  if (j >= p.rows) { return; }
  var s = 0.0;
  for (var i = 0u; i < p.cols; i++) { let v = in0[j * p.cols + i]; s += v * v; }
  out[j] = sqrt(s);
}

// ∂W_dec[j, i] += a·Σ_t h[t, j]·W_dec[j, i]/‖W_dec[j]‖: the L1 term's decoder gradient.
// in0 = W_dec, in1 = [Σ_t h (n values), norms (n values)].
@compute @workgroup_size(WG) fn l1_dec(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat(g, nwg);
  if (e >= p.rows * p.cols) { return; }
  let j = e / p.cols;
  let norm = max(in1[p.rows + j], 1e-12);
  out[e] = out[e] + p.a * in1[j] * in0[e] / norm;
}

// out[t] = number of h[t, :] > 0, as f32 (L0 per token)
@compute @workgroup_size(WG) fn count_active(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat(g, nwg);
  if (t >= p.rows) { return; }
  var c = 0u;
  for (var j = 0u; j < p.cols; j++) { if (in0[t * p.cols + j] > 0.0) { c++; } }
  out[t] = f32(c);
}
