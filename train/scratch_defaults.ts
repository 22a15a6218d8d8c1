// The sparsity settings of an SAE trained from scratch, per kind, on a scale-free footing: what
// the job passes to the trainer and the MSE phase, worked out once from the config and the
// activations' scale (see the README's kinds table for the peers' choices).
import { geometricMedian, jumpThresholdFor } from "../sae/init.ts";
import { sampleActivations } from "./activation_sample.ts";
import { checkWidths } from "../sae/matryoshka_widths.ts";
import type { SaeKind } from "../sae/types.ts";
import type { FinetuneConfig } from "./config.ts";

type Init = NonNullable<FinetuneConfig["init"]>;

/** The normalisation a kind trains under unless the config names one. */
export function normalizationFor(
  kind: SaeKind,
  asked: FinetuneConfig["normalize_activations"],
): "none" | "expected_average_only_in" {
  // relu's λ and jumprelu's θ and bandwidth are set on normalised activations, as SAELens and
  // dictionary_learning train them (gated's λ as relu's); topk and batchtopk are scale-free already.
  return asked ??
    (kind === "relu" || kind === "jumprelu" || kind === "gated"
      ? "expected_average_only_in"
      : "none");
}

/** Whether the job needs the activations' scale s (E‖s·x‖² = d_in) before it trains. */
export function needsScale(init: Init, normalize: string): boolean {
  return normalize !== "none" || init.kind === "jumprelu" ||
    ((init.kind === "relu" || init.kind === "gated") && init.l1_coefficient === undefined);
}

export interface ScratchSparsity {
  /** relu / jumprelu: λ at the end of the warm-up (the controller moves it from there). */
  lambda?: number;
  /** jumprelu: initial θ and the straight-through bandwidth, in the space the SAE reads. */
  theta?: number;
  bandwidth?: number;
  /** batchtopk: MSE-phase steps before the inference threshold follows the batches. */
  thresholdStartStep?: number;
  /** relu / jumprelu: the MSE phase's warm-up steps. */
  warmupSteps?: number;
  /** jumprelu: the controller's λ may cross zero (train/l1_controller.ts says why). */
  signed?: boolean;
}

/**
 * The MSE phase's LR unless the config names one: 3e-3 for relu and jumprelu, 1e-3 for the others.
 * relu's codes are shrunk by the L1 term while the controller is still finding λ: at 1e-3 it ended
 * a 524k-token run at FVU 0.100 and 2.3× TopK's CE gap, at 3e-3 at 0.050 and 0.9×. jumprelu's θ
 * moves about one LR a step: at 1e-3 L0 took 300 steps to come down to its target, at 3e-3 under
 * 100, FVU 0.073 → 0.036 (bench/RESULTS.md). Both read normalised activations (E‖x‖² = d_in), so
 * the LR means the same on any model's scale. (TopK gains at 3e-3 too, FVU 0.045 → 0.031; it keeps
 * 1e-3 until batchtopk is measured there.)
 */
export function pretrainLrFor(kind: SaeKind, asked: number | undefined): number {
  return asked ?? (kind === "relu" || kind === "jumprelu" || kind === "gated" ? 3e-3 : 1e-3);
}

/**
 * `rms`: √(E‖x‖²/d_in) of what the SAE reads (1 when normalised). MSE here is a mean over
 * elements, so relu's λ scales as rms/d_in (SAELens' λ sums the MSE over d_in) and jumprelu's L0
 * coefficient as rms². `centeredRms`: √(E‖x − b_dec‖²/d_in) with b_dec as initialised.
 */
export function scratchSparsity(
  init: Init,
  o: { dIn: number; rms: number; mseSteps: number; centeredRms?: number },
): ScratchSparsity {
  const warmupSteps = Math.round(o.mseSteps * init.l1_warmup_fraction);
  switch (init.kind) {
    case "relu":
    // gated: the same decoder-norm-weighted L1, on the gate's ReLU(π_gate) (SAELens' λ, its MSE
    // summed over d_in, is d_in times this); the controller then holds target_l0 as for relu.
    case "gated":
      return { lambda: init.l1_coefficient ?? o.rms / o.dIn, warmupSteps };
    case "jumprelu":
      return {
        lambda: init.l1_coefficient ?? 0.1 * o.rms * o.rms / init.target_l0,
        // Pre-activations spread as x − b_dec does: about N(0, σ²), σ the centred RMS. θ starts
        // where about 8·target_l0 latents fire and L0 comes down to the target: the encoder's
        // first steps cut L0 about fivefold whatever λ does (started at the target L0 fell to a
        // fifth of it, at 4·target to 0.7 of it), and from below θ, one LR a step at most, only
        // just outruns the encoder's drift (L0 flat at 0.73 of the target under the full push).
        theta: jumpThresholdFor(
          Math.min(8 * init.target_l0, init.d_sae / 2),
          init.d_sae,
          o.centeredRms ?? o.rms,
        ),
        // 0.001 of the activations' norm (√d_in·rms), not of one coordinate: θ learns only from
        // the tokens within ε/2 of it, and at 0.001·rms about 0.1 token per latent fell there in
        // a 1024-token batch, so θ barely answered the controller (L0 19 for 32 with λ at −13·λ₀).
        bandwidth: 1e-3 * o.rms * Math.sqrt(o.dIn),
        warmupSteps,
        signed: true,
      };
    case "batchtopk":
    case "matryoshka_batchtopk":
      return { thresholdStartStep: Math.round(o.mseSteps * init.threshold_start_fraction) };
    case "topk":
      return {};
  }
}

/**
 * matryoshka_batchtopk's prefix widths: those asked for (checked: strictly increasing, the last =
 * d_sae), else the ladder d_sae/16, /8, /4, /2, d_sae. Neither peer has a default (SAELens requires
 * matryoshka_widths, dictionary_learning group_fractions); the ladder doubles each prefix, as the
 * Matryoshka paper's nested sizes do.
 */
export function matryoshkaWidthsFor(init: Init): number[] {
  const widths = init.matryoshka_widths ??
    [...new Set([16, 8, 4, 2].map((f) => Math.floor(init.d_sae / f)).filter((w) => w >= 1))]
      .concat(init.d_sae);
  checkWidths(widths, init.d_sae, "matryoshka_widths");
  return widths;
}

/**
 * b_dec (the geometric median of a sample, in the space the SAE reads, s·x) and the RMS of the
 * sample about it, √(E‖s·x − b_dec‖²/d_in).
 */
export async function centreOf(
  o: Parameters<typeof sampleActivations>[0],
  scale: number,
): Promise<{ bDec: Float32Array; rms: number }> {
  const x = await sampleActivations(o);
  if (scale !== 1) { for (let e = 0; e < x.length; e++) x[e] *= scale; }
  const d = x.length / (o.batches * o.batchSize * o.seqLen);
  const bDec = geometricMedian(x, d);
  let ss = 0;
  for (let e = 0; e < x.length; e++) ss += (x[e] - bDec[e % d]) ** 2;
  return { bDec, rms: Math.sqrt(ss / x.length) };
}
