// Graph surgery around a hook tensor: tap (extra output), prefix (stop at the hook) and suffix
// (the hook becomes an input). Hooks are resolved with resolveHook, so a bad name is an error
// listing the hook points.
import { allNames, makeNode, pruneTo } from "./graph.ts";
import { resolveHook } from "./hooks.ts";
import { cloneModel, type ModelProto, onnx, type ValueInfoProto } from "./onnx.ts";
import { inferShapes, type ShapeInfo, toValueInfo } from "./shapes.ts";

/** The logits output: the one named "logits", else the only graph output. */
export function logitsName(model: ModelProto): string {
  const outs = (model.graph?.output ?? []).map((o) => o.name ?? "");
  if (outs.includes("logits")) return "logits";
  if (outs.length === 1) return outs[0];
  throw new Error(
    `the model has no output named "logits" and ${outs.length} outputs (${outs.join(", ")}); ` +
      `say which one holds the logits`,
  );
}

function infoOf(shapes: Map<string, ShapeInfo>, t: string): ValueInfoProto {
  const s = shapes.get(t);
  if (!s) {
    throw new Error(
      `the shape of "${t}" could not be inferred (an op the shape inference does not know feeds ` +
        `it); it is needed to declare it as a graph input or output`,
    );
  }
  return toValueInfo(t, s);
}

export interface TapOptions {
  /** Also output `logprobs` = LogSoftmax(logits) over the last axis. */
  logProbs?: boolean;
}

/** The whole graph with the hook tensor as an extra output (and `logprobs` if asked). */
export function tap(model: ModelProto, hook: string, opts: TapOptions = {}): ModelProto {
  const name = resolveHook(model, hook);
  const shapes = inferShapes(model);
  const m = cloneModel(model);
  const g = m.graph!;
  const outputs = [...(g.output ?? [])];
  if (!outputs.some((o) => o.name === name)) outputs.push(infoOf(shapes, name));
  if (opts.logProbs) {
    const logits = logitsName(model);
    if (allNames(g).has("logprobs")) {
      throw new Error(`tap: the graph already has a tensor named "logprobs"`);
    }
    g.node = [
      ...(g.node ?? []),
      makeNode("LogSoftmax", [logits], ["logprobs"], { axis: -1 }, "tap/LogSoftmax"),
    ];
    const s = shapes.get(logits);
    outputs.push(
      s ? toValueInfo("logprobs", s) : onnx.ValueInfoProto.create({ name: "logprobs" }),
    );
  }
  g.output = outputs;
  return m;
}

/** Only the nodes the hook needs; the hook is the one output. */
export function prefix(model: ModelProto, hook: string): ModelProto {
  const name = resolveHook(model, hook);
  const shapes = inferShapes(model);
  return pruneTo(model, [name], new Map([[name, infoOf(shapes, name)]]));
}

/**
 * The hook tensor becomes a graph input (with its inferred shape) and the graph computes the
 * logits from it; nodes that only fed the hook are dropped, original inputs still read (for
 * shapes, positions or masks) stay inputs. The hook input comes first.
 */
export function suffix(model: ModelProto, hook: string): ModelProto {
  const name = resolveHook(model, hook);
  if ((model.graph?.input ?? []).some((v) => v.name === name)) {
    throw new Error(`suffix: hook "${name}" is already a graph input`);
  }
  const shapes = inferShapes(model);
  const logits = logitsName(model);
  const m = cloneModel(model);
  m.graph!.input = [infoOf(shapes, name), ...(m.graph!.input ?? [])];
  const out = pruneTo(m, [logits]);
  if (!(out.graph!.input ?? []).some((v) => v.name === name)) {
    throw new Error(`suffix: the logits do not depend on hook "${name}"`);
  }
  return out;
}
