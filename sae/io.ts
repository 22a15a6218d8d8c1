// SAE files: SAELens' layout (a directory with sae_weights.safetensors + cfg.json), and importers for
// dictionary_learning and EleutherAI sparsify checkpoints stored as safetensors.
//
// Key names follow the sources: SAELens 6.x (sae_lens/saes/*.py, loading/pretrained_sae_loaders.py:
// handle_pre_6_0_config), dictionary_learning (dictionary.py AutoEncoder / JumpReluAutoEncoder,
// trainers/top_k.py AutoEncoderTopK, trainers/batch_top_k.py BatchTopKSAE) and sparsify
// (sparse_coder.py SparseCoder, config.py SparseCoderConfig).
import { join } from "node:path";
import { FileAccessError, readConfined, resolveInside } from "../lib/confined_fs.ts";
import { TOPK_MAX_K } from "../gpu/topk.ts";
import { checkWidths } from "./matryoshka_widths.ts";
import {
  f32,
  FLOAT_DTYPES,
  parseSafetensors,
  readSafetensors,
  type StFile,
  type StTensor,
  tensorOf,
  writeSafetensors,
} from "../lib/safetensors.ts";
import { foldScaling } from "./scaling.ts";
import type { Sae, SaeConfig, SaeKind, SaeWeights } from "./types.ts";

/** SAELens architectures that name their kind (besides "standard", which is relu). */
const LOADABLE_KINDS = ["topk", "batchtopk", "jumprelu", "gated", "matryoshka_batchtopk"] as const;

export class SaeFormatError extends Error {
  override name = "SaeFormatError";
}

export const SAE_WEIGHTS_FILENAME = "sae_weights.safetensors";
export const SAE_CFG_FILENAME = "cfg.json";
/** SAELens writes the activation scaling factor here when it is not folded into the weights. */
export const ACTIVATION_SCALER_FILENAME = "activation_scaler.json";
/** The SAELens config format version written: ≥ 6.0 makes SAELens read `metadata` as nested. */
const SAELENS_FORMAT_VERSION = "6.0.0";

// ---------------------------------------------------------------------------------------------
// Tensors

/** A float tensor as f32, refusing NaN and ±Inf: one such weight poisons every step after it. */
function floats(t: StTensor, name: string): Float32Array {
  const out = anyFloats(t, name);
  const bad = out.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new SaeFormatError(
      `tensor "${name}": element ${bad} is ${out[bad]}, a non-finite weight; weights must be ` +
        `finite numbers`,
    );
  }
  return out;
}

/** A float tensor as a fresh f32 array (F32 copied bit-exactly; F64, F16, BF16 converted). */
function anyFloats(t: StTensor, name: string): Float32Array {
  if (!FLOAT_DTYPES.has(t.dtype)) {
    throw new SaeFormatError(`tensor "${name}": expected a float dtype, found ${t.dtype}`);
  }
  return t.dtype === "F32" ? f32(t, name).slice() : f32(t, name);
}

function intScalar(t: StTensor, name: string): number {
  const b = t.bytes;
  let v: number;
  if (t.dtype === "I64") v = Number(new BigInt64Array(b.buffer, b.byteOffset, 1)[0]);
  else if (t.dtype === "I32") v = new Int32Array(b.buffer, b.byteOffset, 1)[0];
  else if (t.dtype === "U32") v = new Uint32Array(b.buffer, b.byteOffset, 1)[0];
  else v = floats(t, name)[0];
  return v;
}

/** The tensor, checked against its expected shape; errors name tensor, expected and found. */
function take(file: StFile, name: string, shape: number[], what: string): StTensor {
  const t = file.tensors.get(name);
  if (!t) {
    throw new SaeFormatError(
      `${what}: missing tensor "${name}" of shape [${shape}] ` +
        `(the file has: ${[...file.tensors.keys()].join(", ") || "nothing"})`,
    );
  }
  const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!same) {
    throw new SaeFormatError(
      `${what}: tensor "${name}": expected shape [${shape}], found [${t.shape}]`,
    );
  }
  return t;
}

function takeF32(file: StFile, name: string, shape: number[], what: string): Float32Array {
  return floats(take(file, name, shape, what), name);
}

function rejectExtra(file: StFile, known: string[], what: string): void {
  const extra = [...file.tensors.keys()].filter((k) => !known.includes(k));
  if (extra.length) {
    throw new SaeFormatError(
      `${what}: unexpected tensor(s) ${extra.map((e) => `"${e}"`).join(", ")} ` +
        `(expected only ${known.join(", ")}); this layout is not supported`,
    );
  }
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/**
 * For an SAE whose encoder reads x (not x − b_dec): pre = x·W_enc + b_enc
 * = (x − b_dec)·W_enc + (b_enc + b_dec·W_enc), so folding b_dec·W_enc into b_enc gives the same
 * SAE in the x − b_dec convention.
 */
function foldBDecIntoBEnc(w: SaeWeights, d: number, n: number): void {
  const shift = new Float64Array(n);
  for (let j = 0; j < d; j++) {
    const b = w.b_dec[j];
    if (b === 0) continue;
    for (let i = 0; i < n; i++) shift[i] += b * w.W_enc[j * n + i];
  }
  w.b_enc = Float32Array.from(w.b_enc, (v, i) => v + shift[i]);
  // gated: π_mag = x·(W_enc·diag(exp(r_mag))) + b_mag takes the same shift, scaled.
  if (w.r_mag && w.b_mag) {
    const r = w.r_mag;
    w.b_mag = Float32Array.from(w.b_mag, (v, i) => v + Math.exp(r[i]) * shift[i]);
  }
}

/**
 * k of a TopK or BatchTopK SAE: at least 1, at most d_sae, and within what the TopK kernel
 * selects per row.
 */
function topK(v: unknown, dSae: number, what: string): number {
  const k = posInt(v, what);
  const max = Math.min(dSae, TOPK_MAX_K);
  if (k > max) {
    throw new SaeFormatError(
      `${what}: ${k} is above ${max} (k must be ≤ d_sae = ${dSae} and ≤ ${TOPK_MAX_K}, the most ` +
        `the TopK kernel selects)`,
    );
  }
  return k;
}

function posInt(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new SaeFormatError(`${what}: expected a positive integer, found ${JSON.stringify(v)}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// SAELens

/** The cfg.json saveSae writes (SAELens 6.x fields, plus pre-6 aliases older readers look for). */
export function saeLensConfig(sae: Sae): Record<string, unknown> {
  const c = sae.cfg;
  const architecture = c.kind === "relu"
    ? "standard"
    : c.kind === "batchtopk" || c.kind === "matryoshka_batchtopk"
    ? "jumprelu"
    : c.kind;
  const meta = c.metadata ?? {};
  const out: Record<string, unknown> = {
    architecture,
    d_in: c.dIn,
    d_sae: c.dSae,
    dtype: "float32",
    device: "cpu",
    apply_b_dec_to_input: true,
    normalize_activations: "none",
    reshape_activations: "none",
    metadata: {
      sae_lens_version: SAELENS_FORMAT_VERSION,
      sae_lens_training_version: SAELENS_FORMAT_VERSION,
      model_name: meta.model ?? null,
      hook_name: meta.hookName ?? null,
      context_size: meta.contextSize ?? null,
      written_by: "splice",
    },
  };
  if (c.kind === "topk" || c.kind === "batchtopk" || c.kind === "matryoshka_batchtopk") {
    const k = posInt(c.k, `saveSae: ${c.kind} SAE k`);
    out.k = k;
    out.activation_fn_kwargs = { k };
  }
  if (c.kind === "topk") {
    out.rescale_acts_by_decoder_norm = false;
    out.activation_fn = "topk";
  }
  // SAELens has no inference "batchtopk": it saves BatchTopK as JumpReLU with the global threshold
  // on every latent. We do the same, and note the kind so loadSae restores it.
  if (c.kind === "batchtopk") out.splice_architecture = "batchtopk";
  // Matryoshka BatchTopK likewise (SAELens saves it as JumpReLU); its prefix widths are kept
  // under SAELens' training field name so a round trip restores them.
  if (c.kind === "matryoshka_batchtopk") {
    out.splice_architecture = "matryoshka_batchtopk";
    out.matryoshka_widths = matryoshkaWidthsOf(c.matryoshkaWidths, c.dSae, "saveSae");
  }
  if ((c.kind === "relu" || c.kind === "gated") && c.l1Coefficient !== undefined) {
    out.l1_coefficient = c.l1Coefficient;
  }
  if (c.transcoder) transcoderConfig(out, c);
  return out;
}

/**
 * A transcoder in SAELens' layout (sae_lens/saes/transcoder.py): architecture "transcoder" or
 * "skip_transcoder", d_out, no b_dec on the input, metadata.hook_name_out. SAELens' transcoders are
 * ReLU; another kind is noted in splice_kind, which only splice reads back.
 */
function transcoderConfig(out: Record<string, unknown>, c: SaeConfig): void {
  out.architecture = c.transcoder!.skip ? "skip_transcoder" : "transcoder";
  if (c.kind !== "relu") out.splice_kind = c.kind;
  delete out.splice_architecture;
  out.d_out = c.dIn;
  out.apply_b_dec_to_input = false;
  (out.metadata as Record<string, unknown>).hook_name_out = c.metadata?.hookNameOut ?? null;
}

/** The tensors saveSae writes (f32, SAELens names and shapes). */
export function saeLensTensors(sae: Sae): Map<string, StTensor> {
  const { dIn: d, dSae: n, kind } = sae.cfg;
  const w = sae.weights;
  const check = (name: string, a: Float32Array | undefined, len: number) => {
    if (!a || a.length !== len) {
      throw new SaeFormatError(
        `saveSae: weight "${name}" has ${a?.length ?? "no"} values, expected ${len}`,
      );
    }
  };
  check("W_enc", w.W_enc, d * n);
  check("b_enc", w.b_enc, n);
  check("W_dec", w.W_dec, n * d);
  check("b_dec", w.b_dec, d);
  const t = new Map<string, StTensor>([
    ["W_enc", tensorOf(w.W_enc, [d, n])],
    ["b_enc", tensorOf(w.b_enc, [n])],
    ["W_dec", tensorOf(w.W_dec, [n, d])],
    ["b_dec", tensorOf(w.b_dec, [d])],
  ]);
  if (kind === "jumprelu") {
    check("threshold", w.threshold, n);
    t.set("threshold", tensorOf(w.threshold!, [n]));
  } else if (kind === "batchtopk" || kind === "matryoshka_batchtopk") {
    check("threshold", w.threshold, 1);
    t.set("threshold", tensorOf(new Float32Array(n).fill(w.threshold![0]), [n]));
  } else if (kind === "gated") {
    // SAELens' GatedSAE: no b_enc; the gate's bias is b_gate, the magnitude path r_mag and b_mag.
    check("r_mag", w.r_mag, n);
    check("b_mag", w.b_mag, n);
    t.delete("b_enc");
    t.set("b_gate", tensorOf(w.b_enc, [n]));
    t.set("r_mag", tensorOf(w.r_mag!, [n]));
    t.set("b_mag", tensorOf(w.b_mag!, [n]));
  }
  if (sae.cfg.transcoder?.skip) {
    check("W_skip", w.W_skip, d * d);
    t.set("W_skip", tensorOf(w.W_skip!, [d, d]));
  }
  return t;
}

export interface SaveOptions {
  /**
   * The activation scaling factor s the SAE was trained with (it saw s·x). It is folded into the
   * weights, so the saved SAE reads raw activations (normalize_activations "none").
   */
  scalingFactor?: number;
}

/** Writes `dir`/sae_weights.safetensors and `dir`/cfg.json in SAELens' layout. */
export async function saveSae(dir: string, sae: Sae, opts: SaveOptions = {}): Promise<void> {
  const out = opts.scalingFactor === undefined ? sae : foldScaling(sae, opts.scalingFactor);
  const tensors = saeLensTensors(out);
  const cfg = saeLensConfig(out);
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, SAE_WEIGHTS_FILENAME), tensors);
  const tmp = join(dir, `${SAE_CFG_FILENAME}.tmp-${crypto.randomUUID()}`);
  await Deno.writeTextFile(tmp, JSON.stringify(cfg, null, 2) + "\n");
  await Deno.rename(tmp, join(dir, SAE_CFG_FILENAME));
}

type Json = Record<string, unknown>;

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/**
 * Builds an Sae from a SAELens cfg.json (6.x, or older with activation_fn_kwargs / hook_point) and
 * its weights. `scalingFactor` is the content of activation_scaler.json, when present.
 */
export function saeFromSaeLens(cfg: Json, file: StFile, scalingFactor?: number): Sae {
  const what = "SAELens SAE";
  const d = posInt(cfg.d_in, `${what}: cfg.json d_in`);
  const n = posInt(cfg.d_sae, `${what}: cfg.json d_sae`);
  const fnKwargs = (cfg.activation_fn_kwargs ?? {}) as Json;
  const activationFn = str(cfg.activation_fn) ?? str(cfg.activation_fn_str);
  let arch = str(cfg.architecture) ?? (activationFn === "topk" ? "topk" : "standard");
  // Transcoders: SAELens' are ReLU ("standard"); splice_kind restores another kind splice saved.
  const transcoder = arch === "transcoder" || arch === "skip_transcoder"
    ? { skip: arch === "skip_transcoder" }
    : undefined;
  if (transcoder) {
    arch = str(cfg.splice_kind) ?? "standard";
    if (arch === "relu") arch = "standard";
    if (cfg.d_out !== undefined && cfg.d_out !== d) {
      throw new SaeFormatError(
        `${what}: a transcoder with d_out ${cfg.d_out} ≠ d_in ${d} is not supported (splice ` +
          `splices transcoders in place of an MLP of the stream's width)`,
      );
    }
  }
  if (arch === "standard" && activationFn === "topk" && fnKwargs.k !== undefined) arch = "topk";
  let kind: SaeKind;
  if (arch === "standard") kind = "relu";
  else if ((LOADABLE_KINDS as readonly string[]).includes(arch)) kind = arch as SaeKind;
  else {
    throw new SaeFormatError(
      `${what}: architecture "${arch}" is not supported (supported: standard, ` +
        `${LOADABLE_KINDS.join(", ")}, transcoder, skip_transcoder)`,
    );
  }
  if (activationFn !== undefined && !["relu", "topk"].includes(activationFn)) {
    throw new SaeFormatError(`${what}: activation_fn "${activationFn}" is not supported`);
  }
  if (cfg.rescale_acts_by_decoder_norm === true) {
    throw new SaeFormatError(
      `${what}: rescale_acts_by_decoder_norm=true is not supported; save the SAE for inference ` +
        `(SAELens folds the decoder norm then) and load that`,
    );
  }
  if (str(cfg.reshape_activations) && cfg.reshape_activations !== "none") {
    throw new SaeFormatError(
      `${what}: reshape_activations "${cfg.reshape_activations}" is not supported`,
    );
  }
  if (cfg.hook_head_index !== undefined && cfg.hook_head_index !== null) {
    throw new SaeFormatError(`${what}: hook_head_index is not supported`);
  }
  const norm = cfg.normalize_activations;
  let scale: number | undefined;
  if (norm === "expected_average_only_in" || norm === true) {
    if (scalingFactor === undefined) {
      throw new SaeFormatError(
        `${what}: normalize_activations="expected_average_only_in" but no ` +
          `${ACTIVATION_SCALER_FILENAME} gives the scaling factor; fold it into the weights ` +
          `(SAELens: sae.fold_activation_norm_scaling_factor) or put the file beside cfg.json`,
      );
    }
    scale = scalingFactor;
  } else if (!(norm === undefined || norm === null || norm === "none" || norm === false)) {
    throw new SaeFormatError(
      `${what}: normalize_activations "${norm}" (per-token normalisation) is not supported`,
    );
  }

  if (file.tensors.has("scaling_factor")) {
    // Pre-6 SAELens kept a per-latent fine-tuning scale; all ones means it was never used.
    const sf = floats(take(file, "scaling_factor", [n], what), "scaling_factor");
    if (!sf.every((v) => v === 1)) {
      throw new SaeFormatError(`${what}: a non-unit "scaling_factor" tensor is not supported`);
    }
    file.tensors.delete("scaling_factor");
  }
  // A gated SAE's b_gate plays b_enc's part (the gate's pre-activation bias).
  const bEncName = kind === "gated" ? "b_gate" : "b_enc";
  const weights: SaeWeights = {
    W_enc: takeF32(file, "W_enc", [d, n], what),
    b_enc: takeF32(file, bEncName, [n], what),
    W_dec: takeF32(file, "W_dec", [n, d], what),
    b_dec: takeF32(file, "b_dec", [d], what),
  };
  const known = ["W_enc", bEncName, "W_dec", "b_dec"];
  if (kind === "jumprelu") {
    weights.threshold = takeF32(file, "threshold", [n], what);
    known.push("threshold");
  }
  if (kind === "matryoshka_batchtopk") {
    // SAELens' training layout: the running threshold is the scalar buffer topk_threshold.
    weights.threshold = Float32Array.of(
      floats(take(file, "topk_threshold", [], what), "topk_threshold")[0],
    );
    known.push("topk_threshold");
  }
  if (kind === "gated") {
    weights.r_mag = takeF32(file, "r_mag", [n], what);
    weights.b_mag = takeF32(file, "b_mag", [n], what);
    known.push("r_mag", "b_mag");
  }
  if (transcoder?.skip) {
    weights.W_skip = takeF32(file, "W_skip", [d, d], what);
    known.push("W_skip");
  }
  rejectExtra(file, known, what);
  // A transcoder's b_dec is an output bias: its encoder reads x as it is.
  if (cfg.apply_b_dec_to_input === false && !transcoder) foldBDecIntoBEnc(weights, d, n);

  let k: number | undefined;
  if (kind === "topk") k = topK(cfg.k ?? fnKwargs.k, n, `${what}: cfg.json k`);
  let matryoshkaWidths: number[] | undefined;
  if (kind === "matryoshka_batchtopk") {
    k = topK(cfg.k ?? fnKwargs.k, n, `${what}: cfg.json k`);
    matryoshkaWidths = matryoshkaWidthsOf(cfg.matryoshka_widths, n, what);
  }
  if (kind === "jumprelu" && cfg.splice_architecture === "matryoshka_batchtopk") {
    const th = weights.threshold!;
    if (!th.every((v) => v === th[0])) {
      throw new SaeFormatError(
        `${what}: splice_architecture "matryoshka_batchtopk" needs one threshold on every ` +
          `latent, but "threshold" varies; load it without splice_architecture as a JumpReLU SAE`,
      );
    }
    kind = "matryoshka_batchtopk";
    weights.threshold = th.slice(0, 1);
    k = topK(cfg.k ?? fnKwargs.k, n, `${what}: cfg.json k`);
    matryoshkaWidths = matryoshkaWidthsOf(cfg.matryoshka_widths, n, what);
  }
  if (kind === "jumprelu" && cfg.splice_architecture === "batchtopk") {
    const th = weights.threshold!;
    if (th.every((v) => v === th[0])) {
      kind = "batchtopk";
      weights.threshold = th.slice(0, 1);
      k = topK(cfg.k, n, `${what}: cfg.json k`);
    }
  }
  const meta =
    (typeof cfg.metadata === "object" && cfg.metadata !== null ? cfg.metadata : cfg) as Json;
  const hookName = str(meta.hook_name) ?? str(cfg.hook_name) ?? str(cfg.hook_point);
  const model = str(meta.model_name) ?? str(cfg.model_name);
  const contextSize = meta.context_size ?? cfg.context_size;
  const config: SaeConfig = { kind, dIn: d, dSae: n };
  if (k !== undefined) config.k = k;
  if (typeof cfg.l1_coefficient === "number") config.l1Coefficient = cfg.l1_coefficient;
  if (matryoshkaWidths) config.matryoshkaWidths = matryoshkaWidths;
  const metadata: NonNullable<SaeConfig["metadata"]> = {};
  if (model) metadata.model = model;
  if (hookName) metadata.hookName = hookName;
  if (typeof contextSize === "number") metadata.contextSize = contextSize;
  const hookNameOut = str(meta.hook_name_out) ?? str(cfg.hook_name_out);
  if (transcoder && hookNameOut) metadata.hookNameOut = hookNameOut;
  if (Object.keys(metadata).length) config.metadata = metadata;
  if (transcoder) config.transcoder = transcoder;
  const sae: Sae = { cfg: config, weights };
  return scale === undefined ? sae : foldScaling(sae, scale);
}

/**
 * A Matryoshka SAE's prefix widths (SAELens' matryoshka_widths): positive integers, strictly
 * increasing, the last d_sae. SAELens appends d_sae when the list stops short and saves the list
 * it trained with, so a file whose list stops short is refused rather than extended.
 */
function matryoshkaWidthsOf(v: unknown, dSae: number, what: string): number[] {
  if (!Array.isArray(v)) {
    throw new SaeFormatError(
      `${what}: a matryoshka_batchtopk SAE needs matryoshka_widths (a list of prefix widths), ` +
        `found ${JSON.stringify(v)}`,
    );
  }
  try {
    checkWidths(v, dSae, `${what}: matryoshka_widths`);
  } catch (e) {
    throw new SaeFormatError((e as Error).message);
  }
  return [...v];
}

const MAX_JSON_BYTES = 1 << 20;
/** SAE weight files above this are refused before reading (d_sae 2^20 × d_in 4096 × f32 = 16 GiB). */
const MAX_WEIGHTS_BYTES = 16 * 2 ** 30;

function parseJsonObject(text: string, name: string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SaeFormatError(`${what}: ${name} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new SaeFormatError(
      `${what}: ${name} must hold a JSON object, found ${JSON.stringify(v)}`,
    );
  }
  return v as Json;
}

async function readJson(path: string, what: string): Promise<Json> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new SaeFormatError(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseJsonObject(text, path, what);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A file of an SAE folder, which must be a regular file in that folder (no symlink out, no FIFO
 * or device) of at most `maxBytes`; errors name the file, not the folder's absolute path.
 */
async function readInFolder(dir: string, name: string, maxBytes: number): Promise<Uint8Array> {
  try {
    const { real } = await resolveInside(dir, name, name, "the SAE's folder");
    return await readConfined(real, { roots: [dir] }, { maxBytes, label: name });
  } catch (e) {
    if (e instanceof FileAccessError) throw new SaeFormatError(`loadSae: ${e.message}`);
    throw e;
  }
}

/** Loads a SAELens directory (sae_weights.safetensors + cfg.json [+ activation_scaler.json]). */
export async function loadSae(dir: string): Promise<Sae> {
  const text = (name: string) =>
    readInFolder(dir, name, MAX_JSON_BYTES).then((b) => new TextDecoder().decode(b));
  const cfg = parseJsonObject(await text(SAE_CFG_FILENAME), SAE_CFG_FILENAME, "loadSae");
  const weights = await readInFolder(dir, SAE_WEIGHTS_FILENAME, MAX_WEIGHTS_BYTES);
  let scale: number | undefined;
  if (await exists(join(dir, ACTIVATION_SCALER_FILENAME))) {
    const s = parseJsonObject(
      await text(ACTIVATION_SCALER_FILENAME),
      ACTIVATION_SCALER_FILENAME,
      "loadSae",
    ).scaling_factor;
    if (typeof s === "number" && !(Number.isFinite(s) && s > 0)) {
      throw new SaeFormatError(`loadSae: ${ACTIVATION_SCALER_FILENAME} scaling_factor is ${s}`);
    }
    if (typeof s === "number") scale = s;
  }
  let file: StFile;
  try {
    file = parseSafetensors(weights);
  } catch (e) {
    throw new SaeFormatError(`loadSae: ${SAE_WEIGHTS_FILENAME}: ${(e as Error).message}`);
  }
  return saeFromSaeLens(cfg, file, scale);
}

// ---------------------------------------------------------------------------------------------
// dictionary_learning

export interface DictionaryLearningOptions {
  /** AutoEncoderTopK and BatchTopKSAE have the same tensors; without a config.json say which. */
  kind?: "topk" | "batchtopk";
  /** The checkpoint's config.json (default: read from the file's directory when present). */
  config?: Json;
}

/**
 * Imports a dictionary_learning checkpoint saved as safetensors (the state_dict of AutoEncoder,
 * AutoEncoderTopK, BatchTopKSAE or JumpReluAutoEncoder). nn.Linear weights are [out, in]:
 * encoder.weight [n, d] = W_encᵀ, decoder.weight [d, n] = W_decᵀ.
 */
export async function importDictionaryLearning(
  path: string,
  opts: DictionaryLearningOptions = {},
): Promise<Sae> {
  const file = await readSafetensors(path);
  let config = opts.config;
  const cfgPath = join(path, "..", "config.json");
  if (!config && await exists(cfgPath)) config = await readJson(cfgPath, "dictionary_learning");
  return saeFromDictionaryLearning(file, { ...opts, config });
}

export function saeFromDictionaryLearning(file: StFile, opts: DictionaryLearningOptions = {}): Sae {
  const what = "dictionary_learning checkpoint";
  const trainer = (opts.config?.trainer ?? {}) as Json;
  const buffer = (opts.config?.buffer ?? {}) as Json;
  const dictClass = str(trainer.dict_class);
  const t = file.tensors;
  const shapeOf = (name: string) => t.get(name)?.shape;
  let sae: Sae;
  if (t.has("W_enc") && t.has("threshold")) {
    // JumpReluAutoEncoder: SAELens-shaped parameters; encoder reads x unless apply_b_dec_to_input.
    const [d, n] = shapeOf("W_enc")!;
    if (d === undefined || n === undefined) {
      throw new SaeFormatError(
        `${what}: tensor "W_enc": expected 2 dims, found [${shapeOf("W_enc")}]`,
      );
    }
    const w: SaeWeights = {
      W_enc: takeF32(file, "W_enc", [d, n], what),
      b_enc: takeF32(file, "b_enc", [n], what),
      W_dec: takeF32(file, "W_dec", [n, d], what),
      b_dec: takeF32(file, "b_dec", [d], what),
      threshold: takeF32(file, "threshold", [n], what),
    };
    rejectExtra(file, ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"], what);
    if (trainer.apply_b_dec_to_input !== true) foldBDecIntoBEnc(w, d, n);
    sae = { cfg: { kind: "jumprelu", dIn: d, dSae: n }, weights: w };
  } else if (t.has("r_mag")) {
    sae = gatedFromDictionaryLearning(file, what);
  } else {
    const enc = shapeOf("encoder.weight");
    if (!enc || enc.length !== 2) {
      throw new SaeFormatError(
        `${what}: tensor "encoder.weight": expected shape [d_sae, d_in], found ` +
          `${enc ? `[${enc}]` : "no such tensor"} (the file has: ${[...t.keys()].join(", ")})`,
      );
    }
    const [n, d] = enc;
    const W_enc = transpose(takeF32(file, "encoder.weight", [n, d], what), n, d);
    const b_enc = takeF32(file, "encoder.bias", [n], what);
    const W_dec = transpose(takeF32(file, "decoder.weight", [d, n], what), d, n);
    if (t.has("bias")) {
      // AutoEncoder (ReLU): `bias` is b_dec.
      const b_dec = takeF32(file, "bias", [d], what);
      rejectExtra(file, ["encoder.weight", "encoder.bias", "decoder.weight", "bias"], what);
      sae = { cfg: { kind: "relu", dIn: d, dSae: n }, weights: { W_enc, b_enc, W_dec, b_dec } };
    } else {
      const b_dec = takeF32(file, "b_dec", [d], what);
      const k = topK(intScalar(take(file, "k", [], what), "k"), n, `${what}: tensor "k"`);
      const threshold = takeF32(file, "threshold", [], what);
      rejectExtra(
        file,
        ["encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k", "threshold"],
        what,
      );
      const kind = opts.kind ??
        (dictClass === "BatchTopKSAE"
          ? "batchtopk"
          : dictClass === "AutoEncoderTopK"
          ? "topk"
          : undefined);
      if (!kind) {
        throw new SaeFormatError(
          `${what}: AutoEncoderTopK and BatchTopKSAE store the same tensors and no config.json ` +
            `trainer.dict_class says which; pass { kind: "topk" } or { kind: "batchtopk" }`,
        );
      }
      const weights: SaeWeights = { W_enc, b_enc, W_dec, b_dec };
      if (kind === "batchtopk") {
        if (!(threshold[0] >= 0)) {
          throw new SaeFormatError(
            `${what}: BatchTopKSAE tensor "threshold" is ${threshold[0]} (never set during ` +
              `training), so the SAE has no inference threshold`,
          );
        }
        weights.threshold = threshold;
      }
      sae = { cfg: { kind, dIn: d, dSae: n, k }, weights };
    }
  }
  const meta: NonNullable<SaeConfig["metadata"]> = {};
  if (str(trainer.lm_name)) meta.model = str(trainer.lm_name);
  if (str(trainer.submodule_name)) meta.hookName = str(trainer.submodule_name);
  if (typeof buffer.ctx_len === "number") meta.contextSize = buffer.ctx_len;
  if (Object.keys(meta).length) sae.cfg.metadata = meta;
  return sae;
}

/**
 * GatedAutoEncoder (dictionary.py): encoder.weight [n, d] without bias, gate_bias, r_mag,
 * mag_bias [n], decoder.weight [d, n], decoder_bias [d]; the encoder reads x − decoder_bias.
 */
function gatedFromDictionaryLearning(file: StFile, what: string): Sae {
  const enc = file.tensors.get("encoder.weight")?.shape;
  if (!enc || enc.length !== 2) {
    throw new SaeFormatError(
      `${what}: GatedAutoEncoder tensor "encoder.weight": expected shape [d_sae, d_in], found ` +
        `${enc ? `[${enc}]` : "no such tensor"}`,
    );
  }
  const [n, d] = enc;
  const names = ["encoder.weight", "gate_bias", "r_mag", "mag_bias", "decoder.weight"];
  const weights: SaeWeights = {
    W_enc: transpose(takeF32(file, "encoder.weight", [n, d], what), n, d),
    b_enc: takeF32(file, "gate_bias", [n], what),
    r_mag: takeF32(file, "r_mag", [n], what),
    b_mag: takeF32(file, "mag_bias", [n], what),
    W_dec: transpose(takeF32(file, "decoder.weight", [d, n], what), d, n),
    b_dec: takeF32(file, "decoder_bias", [d], what),
  };
  rejectExtra(file, [...names, "decoder_bias"], what);
  return { cfg: { kind: "gated", dIn: d, dSae: n }, weights };
}

// ---------------------------------------------------------------------------------------------
// EleutherAI sparsify

/**
 * Imports a sparsify SparseCoder directory (sae.safetensors + cfg.json): encoder.weight [n, d],
 * encoder.bias [n], W_dec [n, d], b_dec [d]; TopK with ReLU pre-activations, encoder input x − b_dec.
 */
export async function importSparsify(dir: string): Promise<Sae> {
  const cfg = await readJson(join(dir, "cfg.json"), "sparsify");
  return saeFromSparsify(cfg, await readSafetensors(join(dir, "sae.safetensors")));
}

export function saeFromSparsify(cfg: Json, file: StFile): Sae {
  const what = "sparsify checkpoint";
  const d = posInt(cfg.d_in, `${what}: cfg.json d_in`);
  const numLatents = typeof cfg.num_latents === "number" && cfg.num_latents > 0
    ? cfg.num_latents
    : posInt(cfg.expansion_factor, `${what}: cfg.json expansion_factor`) * d;
  const n = posInt(numLatents, `${what}: cfg.json num_latents`);
  const k = topK(cfg.k, n, `${what}: cfg.json k`);
  if ((cfg.activation ?? "topk") !== "topk") {
    throw new SaeFormatError(
      `${what}: activation "${cfg.activation}" is not supported (topk only)`,
    );
  }
  // Transcoders (transcode=true): the encoder reads x itself; skip_connection adds W_skip
  // [d, d] applied as x·W_skipᵀ, as our convention.
  const transcode = cfg.transcode === true;
  const skip = cfg.skip_connection === true;
  if (!transcode && (skip || file.tensors.has("W_skip"))) {
    throw new SaeFormatError(`${what}: skip connections (W_skip) without transcode=true`);
  }
  const W_enc = transpose(takeF32(file, "encoder.weight", [n, d], what), n, d);
  const weights: SaeWeights = {
    W_enc,
    b_enc: takeF32(file, "encoder.bias", [n], what),
    W_dec: takeF32(file, "W_dec", [n, d], what),
    b_dec: takeF32(file, "b_dec", [d], what),
  };
  const known = ["encoder.weight", "encoder.bias", "W_dec", "b_dec"];
  if (skip) {
    weights.W_skip = takeF32(file, "W_skip", [d, d], what);
    known.push("W_skip");
  }
  rejectExtra(file, known, what);
  return {
    cfg: { kind: "topk", dIn: d, dSae: n, k, ...(transcode ? { transcoder: { skip } } : {}) },
    weights,
  };
}
