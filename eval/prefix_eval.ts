// CE-eval of a Matryoshka SAE's nested prefixes. At inference every latent is thresholded on its
// own (one global threshold), so the prefix of width w is exactly the SAE cut to its first w
// latents: a BatchTopK SAE with the same threshold. Each inner prefix is evaluated on the same
// batches as the whole SAE; the whole SAE's own evaluation is the last row.
import type { OwnedTrainer } from "../sae/trainer.ts";
import type { Sae } from "../sae/types.ts";
import { resolveHook } from "../lm/hooks.ts";
import { ceEval, type CeEvalOptions, type CeEvalResult, createEvalSessions } from "./ce_eval.ts";

export interface PrefixEvalRow {
  width: number;
  ceClean: number;
  ceSpliced: number;
  ceZeroAblation: number;
  ceRecovered: number;
  ceGap: number;
  kl: number;
  fvu: number;
  l0: number | null;
}

/** The first `width` latents of a matryoshka_batchtopk SAE, as the BatchTopK SAE they form. */
export function prefixSae(sae: Sae, width: number): Sae {
  const { cfg, weights: w } = sae;
  if (cfg.kind !== "matryoshka_batchtopk") {
    throw new Error(`prefixSae: a matryoshka_batchtopk SAE has prefixes, not a ${cfg.kind} one`);
  }
  const d = cfg.dIn, m = cfg.dSae;
  if (!(Number.isInteger(width) && width >= 1 && width <= m)) {
    throw new RangeError(`prefixSae: width must be in [1, d_sae=${m}], got ${width}`);
  }
  if (w.threshold?.length !== 1) {
    throw new RangeError(`prefixSae: the SAE needs its one inference threshold`);
  }
  const W_enc = new Float32Array(d * width);
  for (let i = 0; i < d; i++) W_enc.set(w.W_enc.subarray(i * m, i * m + width), i * width);
  const { matryoshkaWidths: _, ...rest } = cfg;
  return {
    // Inference cuts at the threshold, not at k; k only has to be a valid one for the width (the
    // training k may exceed a narrow prefix, e.g. k 64 over the default ladder's d_sae/16).
    cfg: { ...structuredClone(rest), kind: "batchtopk", dSae: width, k: Math.min(cfg.k!, width) },
    weights: {
      W_enc,
      b_enc: w.b_enc.slice(0, width),
      W_dec: w.W_dec.slice(0, width * d),
      b_dec: w.b_dec.slice(),
      threshold: w.threshold.slice(),
    },
  };
}

export function prefixRow(width: number, r: CeEvalResult): PrefixEvalRow {
  return {
    width,
    ceClean: r.ceClean,
    ceSpliced: r.ceSpliced,
    ceZeroAblation: r.ceZeroAblation,
    ceRecovered: r.ceRecovered,
    ceGap: r.ceGap,
    kl: r.kl,
    fvu: r.recon.fvu,
    l0: r.recon.l0,
  };
}

/**
 * One row per prefix of `sae` (a matryoshka_batchtopk SAE reading raw activations): the inner
 * prefixes CE-evaluated with `options` (whose batches must be an array, read once per prefix), the
 * last row the whole SAE's evaluation `full`.
 */
export async function evalPrefixes(o: {
  sae: Sae;
  full: CeEvalResult;
  options: Omit<CeEvalOptions, "sae" | "batches"> & { batches: BigInt64Array[] };
  createTrainer: (sae: Sae) => Promise<OwnedTrainer>;
}): Promise<PrefixEvalRow[]> {
  const widths = o.sae.cfg.matryoshkaWidths;
  if (!widths?.length) throw new Error("evalPrefixes: the SAE has no matryoshkaWidths");
  const rows: PrefixEvalRow[] = [];
  const { model, hook, ep, device, transcoder } = o.options;
  // One set of LM sessions serves every prefix: only the SAE differs between their evaluations.
  const sessions = await createEvalSessions(
    model,
    transcoder ? hook : resolveHook(model, hook),
    ep,
    device,
    undefined,
    undefined,
    transcoder,
  );
  try {
    for (const width of widths.slice(0, -1)) {
      const trainer = await o.createTrainer(prefixSae(o.sae, width));
      try {
        const r = await ceEval({
          ...o.options,
          sae: {
            dIn: o.sae.cfg.dIn,
            reconstruct: async (x, n) => {
              const f = await trainer.forward(x, n, true);
              return { xhat: f.xhat, l0: f.l0 };
            },
          },
        }, sessions);
        rows.push(prefixRow(width, r));
      } finally {
        trainer.release();
      }
    }
  } finally {
    await sessions.release();
  }
  rows.push(prefixRow(o.sae.cfg.dSae, o.full));
  return rows;
}
