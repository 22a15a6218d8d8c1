// The one way an LM gets in: read the file (external data resolved beside it, file access as the
// caller confines it) and rewrite it into splice's canonical LM. The CLI, the jobs and the routes
// all load through here, so a model that registers is a model that runs.
import { loadModel, type LoadModelOptions, type ModelProto } from "./onnx.ts";
import { canonicalLm, type LmSignature } from "./signature.ts";
import { type HookPoint, listHookPoints } from "./hooks.ts";

export interface LoadedLm {
  model: ModelProto;
  signature: LmSignature;
  hooks: HookPoint[];
}

/** loadModel(path, opts) (lm/onnx.ts), then canonicalLm and the hook points. */
export async function loadLm(path: string, opts: LoadModelOptions = {}): Promise<LoadedLm> {
  return canonical(await loadModel(path, opts));
}

/** canonicalLm plus the hook points, for a model already in memory. */
export function canonical(raw: ModelProto): LoadedLm {
  const { model, signature } = canonicalLm(raw);
  return { model, signature, hooks: listHookPoints(model) };
}
