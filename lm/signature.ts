// The LM adapter: recognises the input/output signature of a causal-LM export (torch.onnx,
// Hugging Face Optimum with or without past, merged decoders, transformers.js fp16 variants) and
// rewrites it into splice's canonical LM: inputs input_ids [B,T] and, where the graph reads them,
// attention_mask and position_ids; outputs without the KV cache; float32 everywhere. Everything
// downstream (tap, suffix, gradient graphs, training) then only has to feed those three inputs.
import { consumers, makeNode, pruneTo, topoSort } from "./graph.ts";
import {
  cloneModel,
  DataType,
  declaredDims,
  type GraphProto,
  HALF_TYPES,
  INT_TYPES,
  makeTensor,
  type ModelProto,
  type NodeProto,
  num,
  onnx,
  type ValueInfoProto,
  widenHalfTensor,
} from "./onnx.ts";
import { ort } from "./session.ts";

export class LmSignatureError extends Error {
  override name = "LmSignatureError";
}

export interface LmSignature {
  /** The token-ids input (always "input_ids" after canonicalLm). */
  inputIds: string;
  attentionMask?: string;
  positionIds?: string;
  logits: string;
  /** What was recognised and rewritten, human-readable. */
  recognised: string[];
}

export const INPUT_IDS = "input_ids";
export const ATTENTION_MASK = "attention_mask";
export const POSITION_IDS = "position_ids";
const USE_CACHE = "use_cache_branch";
const PAST_RE = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT_RE = /^present\.(\d+)\.(key|value)$/;

const SUPPORTED = "splice feeds input_ids, attention_mask, position_ids and cache_position, " +
  "replaces past_key_values.* by an empty past and takes the no-cache branch of a merged " +
  "decoder (use_cache_branch)";

const elemTypeOf = (v: ValueInfoProto) => v.type?.tensorType?.elemType ?? 0;

function dimsOf(v: ValueInfoProto): (number | string | undefined)[] {
  return declaredDims(v) ?? [];
}

/** Renames tensor `from` to `to` in every node input, subgraphs included. */
function renameUses(g: GraphProto, from: string, to: string): void {
  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map((i) => (i === from ? to : i));
    for (const a of n.attribute ?? []) {
      for (const sg of [a.g, ...(a.graphs ?? [])]) if (sg) renameUses(sg, from, to);
    }
  }
  for (const o of g.output ?? []) if (o.name === from) o.name = to;
}

/** Reads outside `g` (its own inputs, initializers and node outputs excluded). */
function localNames(g: GraphProto): Set<string> {
  const s = new Set<string>();
  for (const v of g.input ?? []) s.add(v.name ?? "");
  for (const t of g.initializer ?? []) s.add(t.name ?? "");
  for (const n of g.node ?? []) for (const o of n.output ?? []) s.add(o);
  return s;
}

function outerAllNames(g: GraphProto): Set<string> {
  const s = localNames(g);
  for (const n of g.node ?? []) for (const i of n.input ?? []) s.add(i);
  for (const n of g.node ?? []) if (n.name) s.add(n.name);
  return s;
}

/**
 * Replaces each If whose condition is the use_cache_branch input by the nodes of its else branch
 * (the branch Optimum's merged decoders take when use_cache_branch is false). Returns how many.
 */
function inlineNoCacheBranch(g: GraphProto): number {
  const ifs = (g.node ?? []).filter((n) => n.opType === "If" && n.input?.[0] === USE_CACHE);
  if (!ifs.length) return 0;
  const taken = outerAllNames(g);
  const out: NodeProto[] = [];
  for (const n of g.node ?? []) {
    if (!ifs.includes(n)) {
      out.push(n);
      continue;
    }
    const branch = (n.attribute ?? []).find((a) => a.name === "else_branch")?.g;
    if (!branch) {
      throw new LmSignatureError(`If node "${n.name}" on ${USE_CACHE} has no else_branch`);
    }
    // Local names that clash with the outer graph get a prefix; the rest keep theirs, so that
    // tensor names in the inlined graph stay those of the export.
    const rename = new Map<string, string>();
    for (const name of localNames(branch)) {
      if (!name || !taken.has(name)) continue;
      let k = 0, fresh = `${n.name || "if"}/else/${name}`;
      while (taken.has(fresh)) fresh = `${n.name || "if"}/else${++k}/${name}`;
      rename.set(name, fresh);
      taken.add(fresh);
    }
    for (const name of localNames(branch)) taken.add(name);
    const r = (x: string) => rename.get(x) ?? x;
    for (const t of branch.initializer ?? []) {
      t.name = r(t.name ?? "");
      g.initializer!.push(t);
    }
    for (const bn of branch.node ?? []) {
      bn.input = (bn.input ?? []).map(r);
      bn.output = (bn.output ?? []).map(r);
      for (const a of bn.attribute ?? []) {
        for (const sg of [a.g, ...(a.graphs ?? [])]) {
          if (sg) { for (const [from, to] of rename) renameUses(sg, from, to); }
        }
      }
      out.push(bn);
    }
    (branch.output ?? []).forEach((o, k) => {
      const target = n.output?.[k];
      if (target) out.push(makeNode("Identity", [r(o.name ?? "")], [target], {}, `${target}/inl`));
    });
  }
  g.node = out;
  // Anything else reading the flag sees false, as the branch taken.
  if ((g.node ?? []).some((n) => n.input?.includes(USE_CACHE))) {
    g.node.unshift(
      makeNode("Constant", [], [USE_CACHE], {
        value: makeTensor(USE_CACHE, new Uint8Array([0]), [1], DataType.BOOL),
      }, USE_CACHE),
    );
  }
  g.input = (g.input ?? []).filter((v) => v.name !== USE_CACHE);
  return ifs.length;
}

interface HalfCounts {
  initializers: number;
  /** Signs of fp16 compute: casts to fp16, fp16 graph inputs/outputs, half constants. */
  compute: number;
}

function retype(v: ValueInfoProto, c: HalfCounts, io: boolean): void {
  const tt = v.type?.tensorType;
  if (tt && HALF_TYPES.has(tt.elemType ?? 0)) {
    tt.elemType = DataType.FLOAT;
    if (io) c.compute++;
  }
}

/** Every float16/bfloat16 type and value in the graph becomes float32 (subgraphs too). */
function halfToFloat32(g: GraphProto, c: HalfCounts): void {
  g.initializer = (g.initializer ?? []).map((t) => {
    if (!HALF_TYPES.has(t.dataType ?? 0)) return t;
    c.initializers++;
    return widenHalfTensor(t);
  });
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) retype(v, c, true);
  for (const v of g.valueInfo ?? []) retype(v, c, false);
  const T = onnx.AttributeProto.AttributeType;
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.type === T.TENSOR && a.t && HALF_TYPES.has(a.t.dataType ?? 0)) {
        a.t = widenHalfTensor(a.t);
        if (n.opType !== "ConstantOfShape") c.compute++;
      }
      if (a.type === T.TENSORS && a.tensors) {
        a.tensors = a.tensors.map((
          t,
        ) => (HALF_TYPES.has(t.dataType ?? 0) ? widenHalfTensor(t) : t));
      }
      if (
        a.type === T.INT && (a.name === "to" || a.name === "dtype") &&
        HALF_TYPES.has(num(a.i as number))
      ) {
        a.i = DataType.FLOAT;
        c.compute++;
      }
      for (const sg of [a.g, ...(a.graphs ?? [])]) if (sg) halfToFloat32(sg, c);
    }
  }
}

/**
 * Replaces each past_key_values input by an empty past: a Concat(past, new) along the past axis
 * becomes Identity(new); any other reader (Shape for the past length, mostly) gets a
 * [B, …, 0, …] tensor built from input_ids' batch size.
 */
function emptyPasts(g: GraphProto, past: ValueInfoProto[]): void {
  const cons = consumers(g);
  const built: NodeProto[] = [];
  for (const v of past) {
    const name = v.name!;
    const dims = dimsOf(v);
    const symbolic = dims.map((d, i) => (typeof d === "number" ? -1 : i)).filter((i) => i > 0);
    if (dims.length < 2 || symbolic.length !== 1) {
      throw new LmSignatureError(
        `${name}: cannot build an empty past from its declared dims [${dims.map(String)}]; ` +
          `want [batch, heads, past_sequence_length, head_dim] with heads and head_dim as numbers`,
      );
    }
    const axis = symbolic[0];
    if (elemTypeOf(v) !== DataType.FLOAT) {
      throw new LmSignatureError(
        `${name}: past of type ${DataType[elemTypeOf(v)]}; only float32 (or float16, converted) ` +
          `caches are supported`,
      );
    }
    for (const n of cons.get(name) ?? []) {
      if (n.opType !== "Concat" || n.input?.length !== 2 || n.input[0] !== name) continue;
      const a = (n.attribute ?? []).find((x) => x.name === "axis");
      const ax = num(a?.i as number);
      if ((ax < 0 ? ax + dims.length : ax) !== axis) continue;
      n.opType = "Identity";
      n.input = [n.input[1]];
      n.attribute = [];
    }
    if (!(g.node ?? []).some((n) => n.input?.includes(name))) continue;
    const shapeOut = `${name}/empty/shape`;
    const rest = dims.slice(1).map((d, i) => (i + 1 === axis ? 0 : d as number));
    built.push(
      // Shape's start/end need opset 15; Gather of a [1] index keeps this at opset 13.
      makeNode("Shape", [INPUT_IDS], [`${name}/empty/ids_shape`]),
      makeNode("Constant", [], [`${name}/empty/i0`], {
        value: makeTensor("i0", new BigInt64Array([0n]), [1]),
      }),
      makeNode("Gather", [`${name}/empty/ids_shape`, `${name}/empty/i0`], [`${name}/empty/b`], {
        axis: 0,
      }),
      makeNode("Constant", [], [`${name}/empty/rest`], {
        value: makeTensor("rest", BigInt64Array.from(rest.map(BigInt)), [rest.length]),
      }),
      makeNode("Concat", [`${name}/empty/b`, `${name}/empty/rest`], [shapeOut], { axis: 0 }),
      makeNode("ConstantOfShape", [shapeOut], [name], {
        value: makeTensor("zero", new Float32Array(1), [1]),
      }),
    );
  }
  g.node = [...built, ...(g.node ?? [])];
  const names = new Set(past.map((v) => v.name));
  g.input = (g.input ?? []).filter((v) => !names.has(v.name));
}

/** cache_position with an empty past is arange(seq). */
function cachePositionInGraph(g: GraphProto, name: string): void {
  const p = `${name}/in`;
  g.node = [
    makeNode("Shape", [INPUT_IDS], [`${p}/shape`]),
    makeNode("Constant", [], [`${p}/i1`], { value: makeTensor("i1", new BigInt64Array([1n]), []) }),
    makeNode("Gather", [`${p}/shape`, `${p}/i1`], [`${p}/ts`], { axis: 0 }),
    makeNode("Constant", [], [`${p}/zero`], {
      value: makeTensor("z", new BigInt64Array([0n]), []),
    }),
    makeNode("Constant", [], [`${p}/one`], { value: makeTensor("o", new BigInt64Array([1n]), []) }),
    makeNode("Range", [`${p}/zero`, `${p}/ts`, `${p}/one`], [name]),
    ...(g.node ?? []),
  ];
  g.input = (g.input ?? []).filter((v) => v.name !== name);
}

/** The export rewritten into splice's canonical LM, and what was recognised. */
export function canonicalLm(model0: ModelProto): { model: ModelProto; signature: LmSignature } {
  const model = cloneModel(model0);
  const g = model.graph;
  if (!g) throw new LmSignatureError("the model has no graph");
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ""));
  const inputs = (g.input ?? []).filter((v) => !inits.has(v.name ?? ""));
  const recognised: string[] = [];

  const known = new Set([INPUT_IDS, ATTENTION_MASK, POSITION_IDS, USE_CACHE, "cache_position"]);
  let unknown = inputs.filter((v) => !known.has(v.name!) && !PAST_RE.test(v.name!));
  if (!inputs.some((v) => v.name === INPUT_IDS)) {
    // A torch.onnx export with one integer input under another name: that input is the ids.
    if (inputs.length === 1 && INT_TYPES.has(elemTypeOf(inputs[0]))) {
      const old = inputs[0].name!;
      renameUses(g, old, INPUT_IDS);
      inputs[0].name = INPUT_IDS;
      recognised.push(`token ids input "${old}" → input_ids`);
      unknown = [];
    } else {
      throw new LmSignatureError(
        `no input_ids input (inputs: ${inputs.map((v) => v.name).join(", ") || "none"}); ` +
          `splice needs the token ids as an int64 input named input_ids`,
      );
    }
  } else recognised.push("input_ids");
  if (unknown.length) {
    throw new LmSignatureError(
      `model input${unknown.length > 1 ? "s" : ""} ${
        unknown.map((v) => `"${v.name}"`).join(", ")
      } cannot be fed: ${SUPPORTED}. Re-export the model without ${
        unknown.length > 1 ? "them" : "it"
      } (optimum-cli export onnx --task text-generation-with-past, or text-generation)`,
    );
  }
  const ids = inputs.find((v) => v.name === INPUT_IDS)!;
  if (!INT_TYPES.has(elemTypeOf(ids))) {
    throw new LmSignatureError(
      `input_ids has type ${DataType[elemTypeOf(ids)]}; token ids must be integers`,
    );
  }

  const merged = inlineNoCacheBranch(g);
  if (merged) {
    recognised.push(
      `merged decoder: If on use_cache_branch → no-cache branch${
        merged > 1 ? ` (×${merged})` : ""
      }`,
    );
  } else if (inputs.some((v) => v.name === USE_CACHE)) {
    recognised.push("use_cache_branch (unused by any If; fed false)");
    cachelessFlag(g);
  }

  const half: HalfCounts = { initializers: 0, compute: 0 };
  halfToFloat32(g, half);
  if (half.compute) recognised.push("float16 model → float32 compute (weights as rounded)");
  else if (half.initializers) {
    recognised.push(`fp16 initializers → float32 (${half.initializers})`);
  }

  const past = (g.input ?? []).filter((v) => PAST_RE.test(v.name ?? ""));
  if (past.length) {
    emptyPasts(g, past);
    recognised.push(`past_key_values ×${past.length} (empty past)`);
  }
  if ((g.input ?? []).some((v) => v.name === "cache_position")) {
    cachePositionInGraph(g, "cache_position");
    recognised.push("cache_position (arange(seq))");
  }

  const outs = (g.output ?? []).map((o) => o.name ?? "");
  const presents = outs.filter((o) => PRESENT_RE.test(o));
  const kept = outs.filter((o) => !PRESENT_RE.test(o));
  if (presents.length) recognised.push(`present ×${presents.length} outputs pruned`);
  const logits = kept.includes("logits") ? "logits" : kept.length === 1 ? kept[0] : undefined;
  if (!logits) {
    throw new LmSignatureError(
      `cannot tell which output holds the logits (outputs: ${kept.join(", ")}); ` +
        `name it "logits" or export only the logits`,
    );
  }
  for (const v of g.input ?? []) {
    if (![INPUT_IDS, ATTENTION_MASK, POSITION_IDS].includes(v.name ?? "")) continue;
    const cast = int64Input(g, v);
    if (cast) recognised.push(cast);
  }
  g.node = topoSort(g.node ?? []);
  nameNodes(g);
  const out = pruneTo(model, kept);
  const left = new Set((out.graph!.input ?? []).map((v) => v.name));
  if (!left.has(INPUT_IDS)) {
    throw new LmSignatureError("the logits do not depend on input_ids");
  }
  // splice feeds the mask and the positions as [B, T] like the ids (an empty past): their
  // declared dims (e.g. "past_sequence_length + sequence_length") become the ids' dims.
  const idsShape = (out.graph!.input ?? []).find((v) => v.name === INPUT_IDS)!.type?.tensorType
    ?.shape;
  for (const v of out.graph!.input ?? []) {
    const tt = v.type?.tensorType;
    if ((v.name === ATTENTION_MASK || v.name === POSITION_IDS) && idsShape && tt) {
      tt.shape = onnx.TensorShapeProto.decode(onnx.TensorShapeProto.encode(idsShape).finish());
    }
  }
  const signature: LmSignature = { inputIds: INPUT_IDS, logits, recognised };
  if (left.has(ATTENTION_MASK)) {
    signature.attentionMask = ATTENTION_MASK;
    recognised.push("attention_mask (ones, or the dataset's padding mask)");
  }
  if (left.has(POSITION_IDS)) {
    signature.positionIds = POSITION_IDS;
    recognised.push("position_ids (from the mask, as transformers.js)");
  }
  return { model: out, signature };
}

/**
 * splice feeds its inputs as int64: an input of another integer (or bool) type becomes int64 with
 * a Cast to the type the graph reads.
 */
function int64Input(g: GraphProto, v: ValueInfoProto): string | undefined {
  const tt = v.type?.tensorType;
  const t = tt?.elemType ?? 0;
  if (!tt || t === DataType.INT64) return undefined;
  if (!INT_TYPES.has(t) && t !== DataType.BOOL) {
    throw new LmSignatureError(`${v.name} has type ${DataType[t]}; splice feeds it as int64`);
  }
  const name = v.name!, as = `${name}/as_${DataType[t].toLowerCase()}`;
  renameUses(g, name, as);
  g.node = [makeNode("Cast", [name], [as], { to: t }, as), ...(g.node ?? [])];
  tt.elemType = DataType.INT64;
  return `${name} ${DataType[t]} → fed as int64 (Cast in the graph)`;
}

/**
 * Every node gets a name of its own: graph builders downstream derive node names from these
 * (prefixing them), and ORT refuses two nodes with one name.
 */
function nameNodes(g: GraphProto): void {
  const used = new Set<string>();
  for (const n of g.node ?? []) {
    let name = n.name || n.output?.[0] || n.opType || "node";
    for (let k = 1; used.has(name); k++) name = `${n.name || n.output?.[0]}_${k}`;
    n.name = name;
    used.add(name);
  }
}

function cachelessFlag(g: GraphProto): void {
  g.node = [
    makeNode("Constant", [], [USE_CACHE], {
      value: makeTensor(USE_CACHE, new Uint8Array([0]), [1], DataType.BOOL),
    }, USE_CACHE),
    ...(g.node ?? []),
  ];
  g.input = (g.input ?? []).filter((v) => v.name !== USE_CACHE);
}

/** The LM's own inputs a session may read, by canonical name. */
export const LM_INPUTS: readonly string[] = [INPUT_IDS, ATTENTION_MASK, POSITION_IDS];

/**
 * position_ids as transformers.js derives them from the mask: the count of real tokens before
 * each one (cumsum(mask) − 1), and 1 at padding.
 */
export function positionIdsFromMask(
  mask: BigInt64Array,
  batch: number,
  seq: number,
): BigInt64Array {
  const out = new BigInt64Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    let sum = 0n;
    for (let t = 0; t < seq; t++) {
      const i = b * seq + t;
      if (mask[i] === 0n) out[i] = 1n;
      else out[i] = sum++;
    }
  }
  return out;
}

/**
 * Feeds for whichever of the LM's own inputs (input_ids, attention_mask, position_ids) the
 * signature or the input-name list has: the ids, the mask (ones unless given) and positions
 * derived from the mask.
 */
export function lmFeeds(
  sig: LmSignature | readonly string[],
  ids: BigInt64Array,
  batch: number,
  seq: number,
  mask?: BigInt64Array,
): Record<string, ort.Tensor> {
  if (ids.length !== batch * seq) {
    throw new Error(`input_ids has ${ids.length} values, want ${batch}×${seq}`);
  }
  if (mask && mask.length !== batch * seq) {
    throw new Error(`attention_mask has ${mask.length} values, want ${batch}×${seq}`);
  }
  const names = Array.isArray(sig) ? new Set(sig as readonly string[]) : new Set([
    (sig as LmSignature).inputIds,
    (sig as LmSignature).attentionMask,
    (sig as LmSignature).positionIds,
  ].filter((x): x is string => !!x));
  const idsName = Array.isArray(sig) ? INPUT_IDS : (sig as LmSignature).inputIds;
  const m = mask ?? new BigInt64Array(batch * seq).fill(1n);
  const f: Record<string, ort.Tensor> = {};
  if (names.has(idsName)) f[idsName] = new ort.Tensor("int64", ids, [batch, seq]);
  if (names.has(ATTENTION_MASK)) f[ATTENTION_MASK] = new ort.Tensor("int64", m, [batch, seq]);
  if (names.has(POSITION_IDS)) {
    f[POSITION_IDS] = new ort.Tensor("int64", positionIdsFromMask(m, batch, seq), [batch, seq]);
  }
  return f;
}

/**
 * Feeds for a session: its own tensors from `own`, the LM inputs from the token ids. An input
 * that is neither is an error naming it: token ids are never fed to an input they are not for.
 */
export function feedsFor(
  sessionInputNames: readonly string[],
  own: Record<string, ort.Tensor>,
  lm: { ids: BigInt64Array; batch: number; seq: number; mask?: BigInt64Array },
): Record<string, ort.Tensor> {
  const lmNames = sessionInputNames.filter((n) => !(n in own) && LM_INPUTS.includes(n));
  const lmF = lmNames.length ? lmFeeds(lmNames, lm.ids, lm.batch, lm.seq, lm.mask) : {};
  const f: Record<string, ort.Tensor> = {};
  const missing: string[] = [];
  for (const n of sessionInputNames) {
    const t = own[n] ?? lmF[n];
    if (t) f[n] = t;
    else missing.push(n);
  }
  if (missing.length) {
    throw new LmSignatureError(
      `cannot feed the session input${missing.length > 1 ? "s" : ""} ${
        missing.map((n) => `"${n}"`).join(", ")
      }: splice feeds ${LM_INPUTS.join(", ")}` +
        `${Object.keys(own).length ? ` and ${Object.keys(own).join(", ")}` : ""}; ` +
        `load the model with loadLm (lm/load.ts) so that its signature is made canonical`,
    );
  }
  return f;
}
