// An SAE's weights as GPU buffers, and the (param, grad, m, v) groups an optimizer walks.
import { createBuffer, readF32, upload } from "../gpu/buffers.ts";
import type { ParamGroup } from "../gpu/adamw.ts";
import type { Sae, SaeConfig, SaeWeights } from "./types.ts";

export type ParamName =
  | "W_enc"
  | "b_enc"
  | "W_dec"
  | "b_dec"
  | "threshold"
  | "r_mag"
  | "b_mag"
  | "W_skip";

export interface SaeParams {
  W_enc: GPUBuffer;
  b_enc: GPUBuffer;
  W_dec: GPUBuffer;
  b_dec: GPUBuffer;
  /** jumprelu: θ per latent; batchtopk: the single inference threshold (length 1). */
  threshold?: GPUBuffer;
  /** gated: the magnitude path's log-scale and bias per latent. */
  r_mag?: GPUBuffer;
  b_mag?: GPUBuffer;
  /** Skip transcoders: W_skip [d_out, d_in]. */
  W_skip?: GPUBuffer;
}

/** Element counts of each parameter the config has, in a fixed order (W_enc, b_enc, W_dec, b_dec, threshold, r_mag, b_mag). */
export function paramSizes(cfg: SaeConfig, hasThreshold = cfg.kind === "jumprelu"): Array<
  { name: ParamName; size: number }
> {
  const out: Array<{ name: ParamName; size: number }> = [
    { name: "W_enc", size: cfg.dIn * cfg.dSae },
    { name: "b_enc", size: cfg.dSae },
    { name: "W_dec", size: cfg.dSae * cfg.dIn },
    { name: "b_dec", size: cfg.dIn },
  ];
  if (hasThreshold) {
    const single = cfg.kind === "batchtopk" || cfg.kind === "matryoshka_batchtopk";
    out.push({ name: "threshold", size: single ? 1 : cfg.dSae });
  }
  if (cfg.kind === "gated") {
    out.push({ name: "r_mag", size: cfg.dSae }, { name: "b_mag", size: cfg.dSae });
  }
  if (cfg.transcoder?.skip) out.push({ name: "W_skip", size: cfg.dIn * cfg.dIn });
  return out;
}

function checkLength(name: string, a: Float32Array | undefined, want: number): void {
  if (a?.length !== want) {
    throw new Error(`SAE weight ${name}: expected ${want} elements, found ${a?.length ?? "none"}`);
  }
}

/** Each weight the config has holds its element count; else an error naming the weight. */
export function checkWeights(sae: Sae): void {
  for (const { name, size } of paramSizes(sae.cfg, sae.weights.threshold !== undefined)) {
    checkLength(name, sae.weights[name], size);
  }
}

export function uploadSae(device: GPUDevice, sae: Sae): SaeParams {
  const w = sae.weights;
  checkWeights(sae);
  const p: SaeParams = {
    W_enc: upload(device, w.W_enc, "W_enc"),
    b_enc: upload(device, w.b_enc, "b_enc"),
    W_dec: upload(device, w.W_dec, "W_dec"),
    b_dec: upload(device, w.b_dec, "b_dec"),
  };
  if (w.threshold) p.threshold = upload(device, w.threshold, "threshold");
  if (sae.cfg.kind === "gated") {
    p.r_mag = upload(device, w.r_mag!, "r_mag");
    p.b_mag = upload(device, w.b_mag!, "b_mag");
  }
  if (sae.cfg.transcoder?.skip) p.W_skip = upload(device, w.W_skip!, "W_skip");
  return p;
}

export async function downloadSae(
  device: GPUDevice,
  params: SaeParams,
  cfg: SaeConfig,
): Promise<Sae> {
  const weights = {} as SaeWeights;
  for (const { name, size } of paramSizes(cfg, params.threshold !== undefined)) {
    weights[name] = await readF32(device, params[name]!, size);
  }
  return { cfg: structuredClone(cfg), weights };
}

export function destroyParams(params: SaeParams): void {
  for (const b of Object.values(params)) (b as GPUBuffer | undefined)?.destroy();
}

/** One parameter tensor with its gradient and Adam moments (all f32, `size` elements). */
export type { ParamGroup } from "../gpu/adamw.ts";

export interface ParamGroupOptions {
  /** Which parameters get weight decay. Default: matrices only (W_enc, W_dec), not biases. */
  decay?: (name: ParamName) => boolean;
  /** Which parameters are trained. Default: all the SAE has. */
  trainable?: (name: ParamName) => boolean;
}

/**
 * Pairs each trainable parameter of `params` with its gradient buffer from `grads` and fresh zeroed
 * Adam moments. A trainable parameter without a gradient buffer is an error.
 */
export function makeParamGroups(
  device: GPUDevice,
  cfg: SaeConfig,
  params: SaeParams,
  grads: Partial<Record<ParamName, GPUBuffer>>,
  opts: ParamGroupOptions = {},
): ParamGroup[] {
  const decay = opts.decay ?? ((n) => n === "W_enc" || n === "W_dec");
  const trainable = opts.trainable ?? (() => true);
  const groups: ParamGroup[] = [];
  for (const { name, size } of paramSizes(cfg, params.threshold !== undefined)) {
    if (!trainable(name)) continue;
    const grad = grads[name];
    if (!grad) {
      throw new Error(
        `makeParamGroups: no gradient buffer for trainable parameter ${name}; ` +
          `pass one or exclude it with opts.trainable`,
      );
    }
    if (grad.size < size * 4) {
      throw new Error(
        `makeParamGroups: gradient of ${name} holds ${grad.size / 4} floats, need ${size}`,
      );
    }
    groups.push({
      name,
      param: params[name]!,
      grad,
      // createBuffer memory is zero-initialised by WebGPU.
      m: createBuffer(device, size * 4, `${name}.m`),
      v: createBuffer(device, size * 4, `${name}.v`),
      size,
      decay: decay(name),
    });
  }
  return groups;
}

/** Frees the Adam moments (the params and grads belong to their owners). */
export function destroyMoments(groups: ParamGroup[]): void {
  for (const g of groups) {
    g.m.destroy();
    g.v.destroy();
  }
}
