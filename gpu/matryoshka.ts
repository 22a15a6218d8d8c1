// The Matryoshka SAE's prefix kernels (shaders/matryoshka.wgsl): every prefix's reconstruction in
// one pass, the suffix sums of their residuals, the latent and decoder gradients that read each
// latent's own group, and the encoder gradient. The decode and the weight gradients first compact
// the codes' nonzeros (per token, per latent), so they cost O(nonzeros·d), not O(n·m·d).
import { type Binding, Kernel, type Rec, requireDims, requireValues } from "./kernel.ts";

const kernel = new Kernel({
  name: "matryoshka",
  struct: "Args",
  fields: { n: "u32", d: "u32", m: "u32", groups: "u32", a: "f32", b: "f32" },
  wg: 64,
  layout: ["read", "read", "read", "read", "read", "storage", "uniform"],
});

/** Tokens n, input width d, latents m, and the prefix ends (increasing, the last = m). */
export interface PrefixDims {
  n: number;
  d: number;
  m: number;
  /** The prefixes' widths as a u32 buffer of `groups` values. */
  groups: number;
}

function guard(name: string, dims: PrefixDims, bufs: Record<string, [Binding, number]>): void {
  requireDims(name, { n: dims.n, d: dims.d, m: dims.m, groups: dims.groups });
  const shape = `n=${dims.n} d=${dims.d} m=${dims.m} groups=${dims.groups}`;
  for (const [what, [b, v]] of Object.entries(bufs)) requireValues(name, what, b, v, shape);
}

function args(dims: PrefixDims, a = 0, b = 0) {
  return { n: dims.n, d: dims.d, m: dims.m, groups: dims.groups, a, b };
}

/** u32 words of prefixDecode's `list` for n tokens and m latents. */
export function listWords(n: number, m: number): number {
  return n * (m + 1);
}

/**
 * out[g, t, :] = b_dec + Σ_{j < ends[g]} h[t, j]·W_dec[j, :] for every prefix g. Two dispatches:
 * each token's nonzero codes into `list` (listWords(n, m) u32), then the decode over them.
 */
export function prefixDecode(
  rec: Rec,
  { h, list, W_dec, b_dec, ends, out }: {
    h: Binding;
    list: Binding;
    W_dec: Binding;
    b_dec: Binding;
    ends: Binding;
    out: Binding;
  },
  dims: PrefixDims,
): void {
  const { n, d, m, groups } = dims;
  guard("matryoshka.prefix_decode", dims, {
    h: [h, n * m],
    list: [list, listWords(n, m)],
    W_dec: [W_dec, m * d],
    b_dec: [b_dec, d],
    ends: [ends, groups],
    out: [out, groups * n * d],
  });
  kernel.record(rec, "compact_rows", [h, h, h, ends, h, list], args(dims), { threads: n });
  kernel.record(rec, "prefix_decode", [list, W_dec, b_dec, ends, h, out], args(dims), {
    threads: n * d,
  });
}

/**
 * out[g] = b·gExt + Σ_{q ≥ g} a·(x̂_q − x), [n, d] each: ∂L/∂x̂ as seen by a latent of group g, for
 * L = (a/2)·Σ_q ‖x̂_q − x‖² + b·⟨gExt, x̂_{G−1}⟩.
 */
export function suffixResidual(
  rec: Rec,
  { xhats, x, gExt, ends, out }: {
    xhats: Binding;
    x: Binding;
    gExt: Binding;
    ends: Binding;
    out: Binding;
  },
  dims: PrefixDims & { a: number; b: number },
): void {
  const { n, d, groups } = dims;
  guard("matryoshka.suffix_residual", dims, {
    xhats: [xhats, groups * n * d],
    x: [x, n * d],
    gExt: [gExt, n * d],
    ends: [ends, groups],
    out: [out, groups * n * d],
  });
  kernel.record(
    rec,
    "suffix_residual",
    [xhats, x, gExt, ends, x, out],
    args(dims, dims.a, dims.b),
    {
      threads: n * d,
    },
  );
}

/** out[t, j] = [h[t, j] > 0]·⟨S_g(j)[t, :], W_dec[j, :]⟩: ∂L/∂pre through the selection. */
export function latentGrad(
  rec: Rec,
  { suffix, W_dec, h, ends, out }: {
    suffix: Binding;
    W_dec: Binding;
    h: Binding;
    ends: Binding;
    out: Binding;
  },
  dims: PrefixDims,
): void {
  const { n, d, m, groups } = dims;
  guard("matryoshka.latent_grad", dims, {
    suffix: [suffix, groups * n * d],
    W_dec: [W_dec, m * d],
    h: [h, n * m],
    ends: [ends, groups],
    out: [out, n * m],
  });
  kernel.record(rec, "latent_grad", [suffix, W_dec, h, ends, h, out], args(dims), {
    threads: n * m,
  });
}

/** u32 words of the per-latent token lists (`cols`) of decoderGrad and encoderGrad. */
export function colWords(n: number, m: number): number {
  return m * (n + 1);
}

/**
 * out[j, :] = Σ_t h[t, j]·S_g(j)[t, :]: ∂L/∂W_dec. Two dispatches: each latent's tokens with a
 * nonzero code into `cols` (colWords(n, m) u32), then the sums over them.
 */
export function decoderGrad(
  rec: Rec,
  { h, suffix, ends, cols, out }: {
    h: Binding;
    suffix: Binding;
    ends: Binding;
    cols: Binding;
    out: Binding;
  },
  dims: PrefixDims,
): void {
  const { n, d, m, groups } = dims;
  guard("matryoshka.decoder_grad", dims, {
    h: [h, n * m],
    suffix: [suffix, groups * n * d],
    ends: [ends, groups],
    cols: [cols, colWords(n, m)],
    out: [out, m * d],
  });
  kernel.record(rec, "compact_cols", [h, h, h, ends, h, cols], args(dims), { threads: m });
  kernel.record(rec, "decoder_grad", [h, suffix, cols, ends, h, out], args(dims), {
    threads: m * d,
  });
}

/**
 * out[i, j] = Σ_t xc[t, i]·dh[t, j]: ∂L/∂W_enc [d, m], summed over the tokens where dh is nonzero
 * (found first, into `cols`, colWords(n, m) u32).
 */
export function encoderGrad(
  rec: Rec,
  { xc, dh, ends, cols, out }: {
    xc: Binding;
    dh: Binding;
    ends: Binding;
    cols: Binding;
    out: Binding;
  },
  dims: PrefixDims,
): void {
  const { n, d, m, groups } = dims;
  guard("matryoshka.encoder_grad", dims, {
    xc: [xc, n * d],
    dh: [dh, n * m],
    ends: [ends, groups],
    cols: [cols, colWords(n, m)],
    out: [out, d * m],
  });
  kernel.record(rec, "compact_cols", [dh, dh, dh, ends, dh, cols], args(dims), { threads: m });
  kernel.record(rec, "encoder_grad", [xc, dh, cols, ends, dh, out], args(dims), {
    threads: d * m,
  });
}
