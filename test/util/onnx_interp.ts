// The float64 reference interpreter for tests (the same evaluator the gradient builder uses for
// shapes, run here with every value present).
import type { ModelProto } from "../../lm/onnx.ts";
import { type ETensor, evalGraph } from "../../lm/autodiff/eval.ts";

export type { ETensor };

export function runReference(
  model: ModelProto,
  feeds: Record<string, ETensor>,
  outputs?: string[],
): Record<string, ETensor> {
  const env = evalGraph(model, feeds);
  const names = outputs ?? model.graph!.output!.map((o) => o.name!);
  return Object.fromEntries(names.map((n) => {
    const t = env.get(n);
    if (!t?.data) throw new Error(`runReference: no value for output ${n}`);
    return [n, t];
  }));
}
