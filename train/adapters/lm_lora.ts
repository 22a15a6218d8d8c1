// LoRA on the LM (Chen et al.) while the SAE stays frozen: rank-r adapters on the attention and MLP
// weight MatMuls, of the blocks after the hook's block or of all blocks. Those after the hook train
// through the KL step's gradient graph (lm/autodiff differentiates the suffix with respect to each
// A and B); those before it change the activations the SAE reads, so their gradient runs back
// through the frozen SAE (its input gradient) and then through a gradient graph of the prefix. B
// starts at zero, so the adapted LM equals the original at step 0. The clean distribution stays the
// original LM's: the KL graph's clean suffix is built from the unadapted model.
import { buildGradient } from "../../lm/autodiff/builder.ts";
import { layerOf } from "../../lm/hooks.ts";
import { insertLora, type LoraAdapter } from "../../lm/lora.ts";
import { cloneModel, makeTensor, type ModelProto } from "../../lm/onnx.ts";
import { makeNode } from "../../lm/graph.ts";
import { prefix } from "../../lm/surgery.ts";
import { ort } from "../../lm/session.ts";
import { klStepGraph } from "../../lm/step_graphs.ts";
import { Rng } from "../../lib/rng.ts";
import type { SaeKind } from "../../sae/types.ts";

export interface LmLoraOptions {
  rank: number;
  alpha: number;
  /** "after_hook": blocks after the hook's block; "all": every block (refused, see below). */
  layers: "after_hook" | "all";
  /** Weight MatMuls to adapt, by node or weight name. Default: attention and MLP projections. */
  match?: RegExp;
  saeKind: SaeKind;
  seed?: number;
}

export class LmLoraError extends Error {
  override name = "LmLoraError";
}

const DEFAULT_MATCH = /qkv|query|key|value|attn|attention|dense|fc_in|fc_out|mlp|proj/i;

export class LmLora {
  readonly model: ModelProto;
  readonly adapters: LoraAdapter[];
  readonly params: Record<string, Float32Array> = {};

  /** Adapter inputs of the blocks up to the hook's (layers: "all"), and of those after it. */
  readonly prefixNames: string[] = [];
  readonly suffixNames: string[] = [];

  constructor(readonly base: ModelProto, readonly hook: string, o: LmLoraOptions) {
    if (o.layers === "all" && (o.saeKind === "relu" || o.saeKind === "jumprelu")) {
      throw new LmLoraError(
        `LoRA on LM layers before the hook is refused for ${o.saeKind} SAEs: it changes the ` +
          "activations the SAE encodes and can lower the loss by changing how many latents fire. " +
          'Use layers: "after_hook".',
      );
    }
    const hookLayer = layerOf(hook);
    if (hookLayer === undefined) {
      throw new LmLoraError(`cannot tell which block hook "${hook}" belongs to`);
    }
    const last = Math.max(
      ...(base.graph!.node ?? []).map((n) => layerOf(n.name ?? "") ?? -1),
    );
    if (last <= hookLayer && o.layers === "after_hook") {
      throw new LmLoraError(`hook "${hook}" is in the last block: no LM layers after it to adapt`);
    }
    const { model, adapters } = insertLora(base, {
      match: o.match ?? DEFAULT_MATCH,
      layers: [o.layers === "all" ? 0 : hookLayer + 1, last],
      rank: o.rank,
      alpha: o.alpha,
    });
    this.model = model;
    this.adapters = adapters;
    // Which adapters the hook depends on: those are trained through the SAE and the prefix.
    const inPrefix = new Set((prefix(model, hook).graph!.input ?? []).map((i) => i.name ?? ""));
    const rng = new Rng(o.seed ?? 0);
    for (const a of adapters) {
      this.params[a.A] = Float32Array.from(
        { length: a.dIn * o.rank },
        () => rng.normal() / Math.sqrt(a.dIn),
      );
      this.params[a.B] = new Float32Array(o.rank * a.dOut);
      (inPrefix.has(a.A) ? this.prefixNames : this.suffixNames).push(a.A, a.B);
    }
  }

  get hasPrefix(): boolean {
    return this.prefixNames.length > 0;
  }

  /** The adapted LM up to the hook: input ids and the prefix adapters → the hook tensor. */
  prefixModel(): ModelProto {
    return prefix(this.model, this.hook);
  }

  /** The adapted prefix with an input `upstream` (shaped as the hook) and output ⟨hook, upstream⟩. */
  prefixDotModel(): ModelProto {
    const m = cloneModel(this.prefixModel());
    const g = m.graph!;
    const out = g.output![0];
    g.input = [...(g.input ?? []), { ...out, name: "upstream" }];
    g.node = [
      ...(g.node ?? []),
      makeNode("Mul", [out.name!, "upstream"], ["lora/prod"], {}, "lora/Mul"),
      makeNode("ReduceSum", ["lora/prod"], ["lora/dot"], { keepdims: 0 }, "lora/ReduceSum"),
    ];
    g.output = [{ name: "lora/dot", type: { tensorType: { elemType: 1, shape: { dim: [] } } } }];
    return m;
  }

  /**
   * ∂⟨hook, upstream⟩/∂(prefix adapters), with upstream = ∂L/∂hook: outputs grad_<A|B>, so the
   * chain rule reaches the adapters before the hook.
   */
  prefixGradModel(): ModelProto {
    const m = this.prefixDotModel();
    return buildGradient(m, {
      loss: "lora/dot",
      wrt: this.prefixNames,
      gradName: (w) => `grad_${w}`,
      keepOutputs: false,
    });
  }

  /**
   * The KL step (lm/step_graphs.ts) with the clean suffix from the unadapted LM and the spliced
   * one from the adapted LM, whose suffix adapters are inputs: kl_mean, grad_kl_hook, grad_<A|B>.
   */
  klStepModel(): ModelProto {
    return klStepGraph(this.base, this.hook, { spliced: this.model, wrt: this.suffixNames });
  }

  /** The adapters as tensors; with `names`, only those (a session's inputs). */
  feeds(names?: readonly string[]): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    const want = names ? new Set(names) : null;
    const dims = new Map(this.adapters.flatMap((a) => [[a.A, [a.dIn, -1]], [a.B, [-1, a.dOut]]]));
    for (const [name, v] of Object.entries(this.params)) {
      if (want && !want.has(name)) continue;
      const [r0, c0] = dims.get(name)!;
      const shape = r0 === -1 ? [v.length / c0, c0] : [r0, v.length / r0];
      out[name] = new ort.Tensor("float32", v, shape);
    }
    return out;
  }

  /** ∂(weight·KL)/∂ each adapter tensor in `names` (default: the suffix's) from a step's outputs. */
  gradsFrom(
    out: Record<string, ort.Tensor>,
    weight: number,
    names: readonly string[] = this.suffixNames,
  ): Record<string, Float32Array> {
    const g: Record<string, Float32Array> = {};
    for (const name of names) {
      const t = out[`grad_${name}`];
      if (!t) throw new Error(`the KL step has no gradient output for LoRA input ${name}`);
      g[name] = (t.data as Float32Array).map((v) => v * weight);
    }
    return g;
  }

  /** The adapted LM with the current adapters baked in as initializers (for evaluation). */
  bakedModel(): ModelProto {
    const m = cloneModel(this.model);
    const g = m.graph!;
    const names = new Set(Object.keys(this.params));
    const feeds = this.feeds();
    g.input = (g.input ?? []).filter((i) => !names.has(i.name ?? ""));
    g.initializer = [
      ...(g.initializer ?? []),
      ...[...names].map((n) => makeTensor(n, this.params[n], feeds[n].dims as number[])),
    ];
    return m;
  }
}
