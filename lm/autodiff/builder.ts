// Reverse-mode autodiff over an ONNX graph, emitting ONNX nodes: the returned model computes the
// original outputs plus `<wrt>_grad` = ∂loss/∂wrt for each chosen input or initializer.
//
// Ranks, dtypes and broadcast axes come from evaluating the graph at example dims (symbolic dims
// get distinct primes ≥ 3), with shape subgraphs computed and big float tensors carried as dims
// only. Axes that are 1 at example dims and broadcast against a bigger dim are literal 1s, so the
// un-broadcast ReduceSum axes found there hold for every run.
import { makeNode, opsetVersion } from "../graph.ts";
import {
  cloneModel,
  DataType,
  FLOAT_TYPES,
  type ModelProto,
  type NodeProto,
  num,
  onnx,
  type ValueInfoProto,
} from "../onnx.ts";
import { type ETensor, evalGraph, numel, tensorToProto, UNKNOWN } from "./eval.ts";
import { RULES } from "./rules/index.ts";
import { GradientBuildError, type RuleContext } from "./rule.ts";
import { parseLin } from "../shapes.ts";

export class NoGradientRuleError extends Error {
  override name = "NoGradientRuleError";
  constructor(readonly opType: string, readonly node: string) {
    super(
      `no gradient rule for op ${opType} (node "${node}") on the path from the inputs to the loss; ` +
        `add a rule in lm/autodiff/rules/ or choose a hook/loss that avoids this op`,
    );
  }
}

export interface GradientOptions {
  /** Name of the scalar graph output to differentiate. */
  loss: string;
  /** Graph inputs or initializers to differentiate with respect to. */
  wrt: string[];
  /** Example values for symbolic dims (by dim_param name) used to learn ranks and broadcasts. */
  exampleDims?: Record<string, number>;
  /** Output name for the gradient of `wrt` (default `<wrt>_grad`). */
  gradName?: (wrt: string) => string;
  /** Keep the forward outputs other than the loss (default true). */
  keepOutputs?: boolean;
}

/** Input indices a gradient can flow through, per op (default: all). */
export const DIFF_INPUTS: Record<string, number[]> = {
  Reshape: [0],
  Unsqueeze: [0],
  Squeeze: [0],
  Expand: [0],
  Slice: [0],
  Gather: [0],
  GatherElements: [0],
  Split: [0],
  Where: [1, 2],
  Trilu: [0],
  LayerNormalization: [0, 1, 2],
};

/** Ops whose outputs never carry gradient, whatever their dtype. */
const NON_DIFF = new Set([
  "Shape",
  "Size",
  "ConstantOfShape",
  "Range",
  "Equal",
  "Less",
  "Greater",
  "LessOrEqual",
  "GreaterOrEqual",
  "Not",
  "And",
  "Or",
  "Xor",
  "ArgMax",
  "ArgMin",
  "NonZero",
  "IsNaN",
  "IsInf",
  "Constant",
]);

function dimsOfValueInfo(
  v: ValueInfoProto,
  example: Record<string, number>,
  next: () => number,
): number[] {
  const shp = v.type?.tensorType?.shape;
  if (!shp) throw new GradientBuildError(`input "${v.name}" has no shape; give the export a shape`);
  return (shp.dim ?? []).map((d, i) => {
    // A dim_value of 0 is a real 0 (an empty past), not an unset dim.
    if (!d.dimParam && Object.hasOwn(d, "dimValue") && d.dimValue !== null) {
      return num(d.dimValue);
    }
    // Dim names that are sums ("past_sequence_length + 1") get the sum of their terms' values,
    // so that they agree with the tensors they are computed from.
    const lin = parseLin(d.dimParam || `?${v.name}.${i}`)!;
    let value = lin.c;
    for (const [atom, k] of lin.t) {
      example[atom] ??= next();
      value += k * example[atom];
    }
    if (value <= 0) {
      throw new GradientBuildError(
        `input "${v.name}": dim "${d.dimParam}" is ${value} at example dims; give exampleDims`,
      );
    }
    return value;
  });
}

/** Example-dims evaluation of every tensor (values only for shape-sized ones). */
export function exampleShapes(
  model: ModelProto,
  exampleDims: Record<string, number> = {},
  /** Receives the example value given to every symbolic dim. */
  assigned: Record<string, number> = {},
): Map<string, ETensor> {
  const example = assigned;
  Object.assign(example, exampleDims);
  const primes = [3, 5, 7, 11, 13, 17, 19, 23];
  let k = 0;
  const next = () => primes[k++ % primes.length];
  const inits = new Set((model.graph!.initializer ?? []).map((t) => t.name!));
  const feeds: Record<string, ETensor> = {};
  for (const inp of model.graph!.input ?? []) {
    if (inits.has(inp.name!)) continue;
    const dtype = inp.type?.tensorType?.elemType ?? DataType.FLOAT;
    feeds[inp.name!] = { dtype, dims: dimsOfValueInfo(inp, example, next), data: null };
  }
  return evalGraph(model, feeds, { shapeMode: true, maxConstElems: 1 << 16 });
}

interface Analysis {
  shapes: Map<string, ETensor>;
  /** Nodes on the path wrt → loss that need a rule, in forward order. */
  pathNodes: NodeProto[];
  active: Set<string>;
}

function analyse(
  model: ModelProto,
  loss: string,
  wrt: string[],
  exampleDims?: Record<string, number>,
): Analysis {
  const g = model.graph!;
  const names = new Set([
    ...(g.input ?? []).map((i) => i.name!),
    ...(g.initializer ?? []).map((t) => t.name!),
  ]);
  for (const w of wrt) {
    if (!names.has(w)) {
      throw new GradientBuildError(`wrt "${w}" is neither a graph input nor an initializer`);
    }
  }
  if (!(g.output ?? []).some((o) => o.name === loss)) {
    throw new GradientBuildError(
      `loss "${loss}" is not a graph output (outputs: ${
        (g.output ?? []).map((o) => o.name).join(", ")
      })`,
    );
  }
  const shapes = exampleShapes(model, exampleDims);
  const isFloat = (n: string) => FLOAT_TYPES.has(shapes.get(n)?.dtype ?? -2);
  const maybeFloat = (n: string) => isFloat(n) || shapes.get(n)?.dtype === UNKNOWN;
  for (const w of wrt) {
    if (!isFloat(w)) throw new GradientBuildError(`wrt "${w}" is not a float tensor`);
  }
  const active = new Set(wrt);
  for (const node of g.node ?? []) {
    if (NON_DIFF.has(node.opType!)) continue;
    const diff = DIFF_INPUTS[node.opType!] ?? (node.input ?? []).map((_, i) => i);
    if (!diff.some((i) => active.has(node.input?.[i] ?? ""))) continue;
    for (const o of node.output ?? []) if (o && maybeFloat(o)) active.add(o);
  }
  if (shapes.get(loss)?.dtype === UNKNOWN) {
    const missing = (g.node ?? []).find((n) =>
      n.output?.some((o) => shapes.get(o)?.dtype === UNKNOWN)
    );
    throw new GradientBuildError(
      `cannot evaluate the graph's shapes up to the loss: op ${missing?.opType} (node "${missing?.name}") ` +
        `is not supported by lm/autodiff/eval.ts`,
    );
  }
  if (!isFloat(loss)) throw new GradientBuildError(`loss "${loss}" is not a float tensor`);
  if (numel(shapes.get(loss)!.dims) !== 1) {
    throw new GradientBuildError(
      `loss "${loss}" must be a scalar; it has shape [${shapes.get(loss)!.dims}] at example dims`,
    );
  }
  const needed = new Set([loss]);
  const nodes = g.node ?? [];
  const pathNodes: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!(node.output ?? []).some((o) => needed.has(o) && active.has(o))) continue;
    pathNodes.push(node);
    for (const inp of node.input ?? []) if (inp && active.has(inp)) needed.add(inp);
  }
  for (const w of wrt) {
    if (!needed.has(w)) throw new GradientBuildError(`loss "${loss}" does not depend on "${w}"`);
  }
  return {
    shapes,
    pathNodes: pathNodes.reverse(),
    active: new Set([...active].filter((n) => needed.has(n))),
  };
}

/** Ops on the wrt → loss path that have no gradient rule (empty when buildGradient would succeed). */
export function missingGradientRules(
  model: ModelProto,
  loss: string,
  wrt: string[],
  exampleDims?: Record<string, number>,
): { opType: string; node: string }[] {
  const { pathNodes } = analyse(model, loss, wrt, exampleDims);
  return pathNodes.filter((n) => !hasRule(n)).map((n) => ({
    opType: n.opType!,
    node: n.name ?? "",
  }));
}

function hasRule(n: NodeProto): boolean {
  const domainOk = !n.domain || n.domain === "ai.onnx" || n.domain === "com.microsoft";
  return domainOk && Object.hasOwn(RULES, n.opType!);
}

/** Returns a copy of `model` that also outputs `<wrt>_grad` = ∂loss/∂wrt. */
export function buildGradient(model0: ModelProto, opts: GradientOptions): ModelProto {
  // A clone that shares the weights' bytes: a re-encode would copy them (and fail past 2 GB).
  const model = cloneModel(model0);
  const opset = opsetVersion(model);
  if (opset < 13) {
    throw new GradientBuildError(
      `opset ${opset} < 13: re-export the model with opset ≥ 13 (17 recommended)`,
    );
  }
  const { shapes, pathNodes, active } = analyse(model, opts.loss, opts.wrt, opts.exampleDims);
  const lacking = pathNodes.find((n) => !hasRule(n));
  if (lacking) throw new NoGradientRuleError(lacking.opType!, lacking.name ?? "");
  const g = model.graph!;
  const taken = new Set<string>();
  for (const n of g.node ?? []) {
    for (const o of [...(n.input ?? []), ...(n.output ?? [])]) taken.add(o);
  }
  for (const t of g.initializer ?? []) taken.add(t.name!);
  for (const t of g.input ?? []) taken.add(t.name!);
  let counter = 0;
  const fresh = (hint: string) => {
    let n: string;
    do n = `grad/${hint}_${counter++}`; while (taken.has(n));
    taken.add(n);
    return n;
  };
  const newNodes: NodeProto[] = [];
  const constCache = new Map<string, string>();
  const grads = new Map<string, string[]>();

  const info = (name: string): ETensor => {
    const t = shapes.get(name);
    if (!t) throw new GradientBuildError(`internal: no example shape for "${name}"`);
    return t;
  };
  const emit = (
    op: string,
    inputs: string[],
    attrs: Record<string, number | number[] | string> = {},
    nOut = 1,
  ) => {
    const outs = Array.from({ length: nOut }, () => fresh(op));
    newNodes.push(makeNode(op, inputs, outs, attrs, outs[0]));
    return outs;
  };
  const constant = (dtype: number, dims: number[], values: number[]) => {
    const key = `${dtype}|${dims}|${values}`;
    const hit = constCache.get(key);
    if (hit) return hit;
    const name = fresh("const");
    newNodes.push(
      makeNode("Constant", [], [name], { value: tensorToProto(name, dtype, dims, values) }, name),
    );
    constCache.set(key, name);
    return name;
  };
  // Shapes of emitted tensors are tracked where rules need them (unbroadcast of a fresh tensor).
  const emittedShapes = new Map<string, ETensor>();
  const shapeOf = (n: string) => (emittedShapes.get(n) ?? info(n));

  const ctxFor = (node: NodeProto): RuleContext => {
    const c: RuleContext = {
      node,
      opset,
      x: (i) => node.input?.[i] ?? "",
      y: (i) => node.output?.[i] ?? "",
      gy: (i) => {
        const o = node.output?.[i];
        const parts = o ? grads.get(o) : undefined;
        if (!parts || !parts.length) return null;
        return accumulate(o!, parts);
      },
      needs: (i) => active.has(node.input?.[i] ?? ""),
      shape: (n) => shapeOf(n).dims.slice(),
      rank: (n) => shapeOf(n).dims.length,
      dtype: (n) => shapeOf(n).dtype,
      value: (n) => shapeOf(n).data,
      emit,
      op: (op, inputs, attrs) => emit(op, inputs, attrs)[0],
      scalar: (v, like) => constant(shapeOf(like).dtype, [], [v]),
      ints: (values) => constant(DataType.INT64, [values.length], values),
      zerosLike: (n) => zerosOf(n),
      unbroadcast: (gName, x, gDims) => {
        const xs = shapeOf(x).dims, gs = gDims ?? shapeOf(node.output![0]).dims;
        const lead = gs.length - xs.length;
        const axes: number[] = [];
        for (let i = 0; i < gs.length; i++) {
          if (i < lead) axes.push(i);
          else if (xs[i - lead] === 1 && gs[i] !== 1) axes.push(i);
        }
        if (!axes.length) return gName;
        let r = c.reduceSum(gName, axes, true);
        r = emit("Reshape", [r, emit("Shape", [x])[0]])[0];
        return r;
      },
      reduceSum: (x, axes, keepdims) =>
        emit("ReduceSum", [x, c.ints(axes)], { keepdims: keepdims ? 1 : 0 })[0],
      reduceMean: (x, axes, keepdims) =>
        opset >= 18
          ? emit("ReduceMean", [x, c.ints(axes)], { keepdims: keepdims ? 1 : 0 })[0]
          : emit("ReduceMean", [x], { axes, keepdims: keepdims ? 1 : 0 })[0],
      unsqueeze: (x, axes) => emit("Unsqueeze", [x, c.ints(axes)])[0],
      error: (msg) => new GradientBuildError(`${node.opType} node "${node.name}": ${msg}`),
    };
    return c;
  };
  const zerosOf = (n: string) => {
    const t = shapeOf(n);
    const shp = emit("Shape", [n])[0];
    const name = fresh("zeros");
    const value = tensorToProto("value", t.dtype, [1], [0]);
    newNodes.push(makeNode("ConstantOfShape", [shp], [name], { value }, name));
    return name;
  };
  const accumulate = (tensor: string, parts: string[]) => {
    if (parts.length === 1) return parts[0];
    let acc = parts[0];
    for (const p of parts.slice(1)) acc = emit("Add", [acc, p])[0];
    grads.set(tensor, [acc]);
    return acc;
  };

  // Seed: d loss / d loss = 1 (ones of the loss's runtime shape).
  {
    const t = info(opts.loss);
    const name = fresh("seed");
    const value = tensorToProto("value", t.dtype, [1], [1]);
    newNodes.push(
      makeNode("ConstantOfShape", [emit("Shape", [opts.loss])[0]], [name], { value }, name),
    );
    grads.set(opts.loss, [name]);
  }

  for (let i = pathNodes.length - 1; i >= 0; i--) {
    const node = pathNodes[i];
    if (!(node.output ?? []).some((o) => grads.get(o)?.length)) continue;
    const rule = RULES[node.opType!];
    const c = ctxFor(node);
    const gin = rule(c);
    (node.input ?? []).forEach((inp, k) => {
      if (!inp || !active.has(inp)) return;
      const gk = gin[k];
      if (!gk) throw c.error(`rule gave no gradient for input ${k} ("${inp}")`);
      const list = grads.get(inp) ?? [];
      list.push(gk);
      grads.set(inp, list);
    });
  }

  const totals = opts.wrt.map((w) => accumulate(w, grads.get(w)!));
  g.node = [...(g.node ?? []), ...newNodes];
  if (opts.keepOutputs === false) g.output = (g.output ?? []).filter((o) => o.name === opts.loss);
  const valueInfo = new Map<string, ValueInfoProto>();
  for (const v of [...(g.input ?? []), ...(g.valueInfo ?? [])]) valueInfo.set(v.name!, v);
  for (const [k, w] of opts.wrt.entries()) {
    const total = totals[k];
    const outName = opts.gradName ? opts.gradName(w) : `${w}_grad`;
    if (taken.has(outName)) {
      throw new GradientBuildError(`output name "${outName}" is already used`);
    }
    g.node.push(makeNode("Identity", [total], [outName], {}, outName));
    const vi = valueInfo.get(w);
    const t = info(w);
    g.output!.push(onnx.ValueInfoProto.create({
      name: outName,
      type: vi?.type ?? {
        tensorType: { elemType: t.dtype, shape: { dim: t.dims.map((d) => ({ dimValue: d })) } },
      },
    }));
  }
  return model;
}
