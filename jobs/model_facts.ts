// What the submit-time checks need to know of a registered model, read from its ONNX file once
// per file version and hook: its vocabulary, the hook's width, d_model, its size in bytes.
import { listHookPoints, resolveHook } from "../lm/hooks.ts";
import { decodeModel, externalInfo, type ModelProto, num } from "../lm/onnx.ts";

export interface ModelFacts {
  vocab: number | null;
  modelBytes: number;
  /** The widest hook point: the residual stream's d_model. */
  dModel: number | null;
  /** Width of the hook asked for; null when it does not resolve or has no fixed width. */
  hookWidth: number | null;
}

const cache = new Map<string, ModelFacts>();

/** Facts of the model file at `path`; `hook` is a tensor name or resid_post:<layer>. */
export async function modelFacts(path: string, hook: string | undefined): Promise<ModelFacts> {
  const st = await Deno.stat(path);
  const key = [path, st.size, st.mtime?.getTime(), hook ?? ""].join("\u0000");
  const have = cache.get(key);
  if (have) return have;
  const facts = factsOf(decodeModel(await Deno.readFile(path)), st.size, hook);
  if (cache.size >= 64) cache.clear();
  cache.set(key, facts);
  return facts;
}

export function factsOf(model: ModelProto, fileBytes: number, hook?: string): ModelFacts {
  let external = 0;
  for (const t of model.graph?.initializer ?? []) {
    if (t.externalData?.length) external += externalInfo(t).length ?? 0;
  }
  const last = model.graph?.output?.[0]?.type?.tensorType?.shape?.dim?.at(-1);
  const vocab = last?.dimValue != null ? num(last.dimValue) : 0;
  const hooks = listHookPoints(model);
  const widths = hooks.map((h) => Number(h.dims[2])).filter(Number.isInteger);
  let hookWidth: number | null = null;
  if (hook) {
    try {
      const name = resolveHook(model, hook);
      const d = Number(hooks.find((h) => h.name === name)?.dims[2]);
      hookWidth = Number.isInteger(d) ? d : null;
    } catch { /* an unknown hook is the job's error to report, with its own message */ }
  }
  return {
    vocab: vocab > 0 ? vocab : null,
    modelBytes: fileBytes + external,
    dModel: widths.length ? Math.max(...widths) : null,
    hookWidth,
  };
}
