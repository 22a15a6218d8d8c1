// CE-eval: for a model, hook, SAE and token batches, the LM's next-token CE clean, with the SAE's
// reconstruction spliced in, with the hook zero-ablated and mean-ablated; the fraction of CE
// recovered; KL(p_clean ‖ p_spliced); reconstruction metrics; CE and KL per position. Per batch one
// prefix forward (the clean activations) and one session that runs the clean suffix and the three
// spliced ones (lm/step_graphs.ts ceEvalGraph): the [B, T, V] log-probs never leave it. Averages are
// pooled over tokens.
import type { ModelProto } from "../lm/onnx.ts";
import { createSessions, type ExecutionProvider, type LmSession, ort } from "../lm/session.ts";
import { feedsFor } from "../lm/signature.ts";
import { ceEvalGraph } from "../lm/step_graphs.ts";
import { prefix as prefixOf } from "../lm/surgery.ts";
import { resolveHook } from "../lm/hooks.ts";
import { type MlpHookPair, transcoderPrefix } from "../lm/transcoder_graphs.ts";
import { type Activations, ReconAccumulator, type ReconMetrics } from "./recon_metrics.ts";

export class EvalError extends Error {
  override name = "EvalError";
}

/** What CE-eval needs of an SAE: its width and a reconstruction of a batch of activations. */
export interface Reconstructor {
  dIn: number;
  dSae?: number;
  /** x̂, and either the activations or just the batch's mean L0 (for L0 without the codes). */
  reconstruct(
    x: Float32Array,
    nTokens: number,
    /** Transcoders: the MLP output they predict (the GPU trainers compare with it). */
    target?: Float32Array,
  ): Promise<{ xhat: Float32Array; acts?: Activations; l0?: number }>;
}

export interface CeEvalOptions {
  model: ModelProto;
  hook: string;
  ep: ExecutionProvider;
  device?: GPUDevice;
  /** Token batches [batch, seq] (int64). */
  batches: AsyncIterable<BigInt64Array> | Iterable<BigInt64Array>;
  batchSize: number;
  seqLen: number;
  /** The model's context length when known (e.g. from its config); longer sequences are refused. */
  contextLength?: number;
  /** Total batches, for progress only. */
  totalBatches?: number;
  sae: Reconstructor;
  /** Positions 0..n−1 are left out of every average (and keep their original activations). */
  skipFirstPositions?: number;
  /** Token ids (BOS, EOS, pad) left out of the averages (and kept original in the splice). */
  excludeTokens?: number[];
  onProgress?: (done: { tokens: number; totalTokens?: number }) => void;
  signal?: AbortSignal;
  /**
   * The SAE is a transcoder of this MLP: it reads the MLP's input, the spliced run has the MLP's
   * output replaced by ŷ (resid_post − y + ŷ at the pair's resid_post, `hook` ignored), zero- and
   * mean-ablation replace the MLP's output by 0 and its mean, and FVU / MSE are against y.
   */
  transcoder?: MlpHookPair;
}

export interface CeEvalResult {
  averaging: "pooled over tokens";
  tokens: number;
  ceClean: number;
  ceSpliced: number;
  ceZeroAblation: number;
  ceMeanAblation: number;
  /** (CE_zero − CE_spliced) / (CE_zero − CE_clean). */
  ceRecovered: number;
  /** The same against mean-ablation. */
  ceRecoveredMean: number;
  ceGap: number;
  kl: number;
  /** KL score: (KL_zero − KL_spliced) / KL_zero. */
  klScore: number;
  klZero: number;
  recon: ReconMetrics;
  perPosition: { ceClean: number[]; ceSpliced: number[]; kl: number[] };
}

export interface EvalSessions {
  /** The LM up to the hook: the clean activations (transcoders: then the MLP's input, output). */
  clean: LmSession;
  /** ceEvalGraph with three variants: spliced, zero-ablated, mean-ablated. */
  suffix: LmSession;
  /** Where the SAE's input comes from when not the clean prefix (an LM adapted before the hook). */
  prefix?: LmSession;
  hookName: string;
  release(): Promise<void>;
}

export async function createEvalSessions(
  model: ModelProto,
  hook: string,
  ep: ExecutionProvider,
  device?: GPUDevice,
  /** The LM after the hook when it is not `model`'s own (an LM adapted by LoRA). */
  suffixModel: ModelProto = model,
  /** The LM up to the hook when the spliced run's differs from `model` (LoRA before the hook). */
  prefixModel?: ModelProto,
  /** A transcoder's MLP (the splice is then at its resid_post, `hook` ignored). */
  transcoder?: MlpHookPair,
): Promise<EvalSessions> {
  const opts = { ep, device };
  const [clean, suffix, prefix] = await createSessions([
    { model: transcoder ? transcoderPrefix(model, transcoder) : prefixOf(model, hook), opts },
    // A transcoder splices at its block's output, whatever hook names its input.
    {
      model: ceEvalGraph(model, transcoder?.post ?? hook, 3, { spliced: suffixModel }),
      opts,
    },
    prefixModel ? { model: prefixModel, opts } : null,
  ]);
  return {
    clean: clean!,
    suffix: suffix!,
    prefix: prefix ?? undefined,
    hookName: transcoder?.post ?? hook,
    release: async () => {
      await clean!.release();
      await suffix!.release();
      await prefix?.release();
    },
  };
}

export async function ceEval(opts: CeEvalOptions, sessions?: EvalSessions): Promise<CeEvalResult> {
  const B = opts.batchSize, T = opts.seqLen;
  if (T < 2) {
    throw new EvalError(`sequence length ${T} is too short: next-token CE needs at least 2`);
  }
  if (opts.contextLength && T > opts.contextLength) {
    throw new EvalError(
      `sequence length ${T} is longer than the model's context of ${opts.contextLength} tokens`,
    );
  }
  const tc = opts.transcoder;
  let hook: string;
  try {
    hook = tc ? tc.post : resolveHook(opts.model, opts.hook);
  } catch (e) {
    throw new EvalError((e as Error).message);
  }
  opts = { ...opts, hook };
  const own = !sessions;
  sessions ??= await createEvalSessions(
    opts.model,
    opts.hook,
    opts.ep,
    opts.device,
    undefined,
    undefined,
    tc,
  );
  const skip = opts.skipFirstPositions ?? 0;
  const excluded = new Set(opts.excludeTokens ?? []);
  const acc = new ReconAccumulator(opts.sae.dIn, opts.sae.dSae);
  const sums = { clean: 0, spliced: 0, zero: 0, mean: 0, kl: 0, klZero: 0, ceN: 0, klN: 0 };
  const pos = {
    ceClean: new Float64Array(T - 1),
    ceSpliced: new Float64Array(T - 1),
    kl: new Float64Array(T),
    nCe: new Float64Array(T - 1),
    nKl: new Float64Array(T),
  };
  let tokens = 0, haveActs = false, d = 0, l0Sum = 0;
  try {
    for await (const ids of opts.batches) {
      opts.signal?.throwIfAborted();
      if (ids.length !== B * T) {
        throw new EvalError(`a batch has ${ids.length} tokens; expected ${B}×${T}`);
      }
      const lmIn = { ids, batch: B, seq: T };
      const runPrefix = (p: LmSession) => p.run(feedsFor(p.inputNames, {}, lmIn));
      let cleanOut: Record<string, ort.Tensor>;
      try {
        cleanOut = await runPrefix(sessions.clean);
      } catch (e) {
        throw new EvalError(`the LM failed on a [${B}, ${T}] batch: ${(e as Error).message}`);
      }
      const hookOut = cleanOut[sessions.clean.outputNames[0]];
      d = hookOut.dims[2];
      if (d !== opts.sae.dIn) {
        throw new EvalError(
          `the SAE reads ${opts.sae.dIn}-wide activations but hook "${opts.hook}" is ${d} wide`,
        );
      }
      const xClean = hookOut.data as Float32Array;
      const x = sessions.prefix
        ? Float32Array.from(
          (await runPrefix(sessions.prefix))[sessions.prefix.outputNames[0]].data as Float32Array,
        )
        : xClean;
      // Transcoders: what they read and predict; the stream around the MLP is x − y.
      const xIn = tc ? cleanOut[tc.input].data as Float32Array : x;
      const y = tc ? cleanOut[tc.output].data as Float32Array : x;
      // Positions left out keep their original activations in every spliced run.
      const keep = new Uint8Array(B * T);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          keep[b * T + t] = t >= skip && !excluded.has(Number(ids[b * T + t])) ? 1 : 0;
        }
      }
      const { xhat, acts, l0 } = await opts.sae.reconstruct(xIn, B * T, tc ? y : undefined);
      if (l0 !== undefined) l0Sum += l0 * B * T;
      if (acts) haveActs = true;
      acc.add(y, xhat, acts, keep);
      const mean = new Float64Array(d);
      let nk = 0;
      for (let r = 0; r < B * T; r++) {
        if (!keep[r]) continue;
        nk++;
        for (let i = 0; i < d; i++) mean[i] += y[r * d + i];
      }
      // SAE: the hook's value; transcoder: resid_post with the MLP's output taken out.
      const base = (r: number, i: number) => tc ? x[r * d + i] - y[r * d + i] : 0;
      const spliceIn = (f: (r: number, i: number) => number) => {
        const out = new Float32Array(B * T * d);
        for (let r = 0; r < B * T; r++) {
          for (let i = 0; i < d; i++) out[r * d + i] = keep[r] ? f(r, i) : x[r * d + i];
        }
        return out;
      };
      const act = (a: Float32Array) => new ort.Tensor("float32", a, [B, T, d]);
      const out = await sessions.suffix.run(feedsFor(sessions.suffix.inputNames, {
        hook_clean: act(xClean),
        hook_0: act(spliceIn((r, i) => base(r, i) + xhat[r * d + i])),
        hook_1: act(spliceIn((r, i) => base(r, i))),
        hook_2: act(spliceIn((r, i) => base(r, i) + mean[i] / Math.max(nk, 1))),
        labels: new ort.Tensor("int64", ids, [B, T]),
      }, lmIn));
      const ceC = out["ce_clean"].data as Float32Array;
      const ceS = out["ce_0"].data as Float32Array, ceZ = out["ce_1"].data as Float32Array;
      const ceM = out["ce_2"].data as Float32Array;
      const klS = out["kl_0"].data as Float32Array, klZ = out["kl_1"].data as Float32Array;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const r = b * T + t;
          if (!keep[r]) continue;
          sums.kl += klS[r];
          sums.klZero += klZ[r];
          sums.klN++;
          pos.kl[t] += klS[r];
          pos.nKl[t]++;
          if (t === T - 1) continue;
          const c = b * (T - 1) + t;
          const ceClean = ceC[c];
          sums.clean += ceClean;
          sums.spliced += ceS[c];
          sums.zero += ceZ[c];
          sums.mean += ceM[c];
          sums.ceN++;
          pos.ceClean[t] += ceClean;
          pos.ceSpliced[t] += ceS[c];
          pos.nCe[t]++;
        }
      }
      tokens += B * T;
      opts.onProgress?.({
        tokens,
        totalTokens: opts.totalBatches ? opts.totalBatches * B * T : undefined,
      });
    }
  } finally {
    if (own) await sessions.release();
  }
  if (tokens === 0) throw new EvalError("the data set gave no batches to evaluate");
  const n = Math.max(sums.ceN, 1);
  const ceClean = sums.clean / n, ceSpliced = sums.spliced / n;
  const ceZero = sums.zero / n, ceMean = sums.mean / n;
  const kl = sums.kl / Math.max(sums.klN, 1), klZero = sums.klZero / Math.max(sums.klN, 1);
  const per = (s: Float64Array, c: Float64Array) =>
    Array.from(s, (v, i) => (c[i] ? v / c[i] : NaN));
  return {
    averaging: "pooled over tokens",
    tokens: sums.klN,
    ceClean,
    ceSpliced,
    ceZeroAblation: ceZero,
    ceMeanAblation: ceMean,
    ceRecovered: (ceZero - ceSpliced) / (ceZero - ceClean),
    ceRecoveredMean: (ceMean - ceSpliced) / (ceMean - ceClean),
    ceGap: ceSpliced - ceClean,
    kl,
    klScore: (klZero - kl) / klZero,
    klZero,
    recon: { ...acc.result(haveActs), ...(haveActs || !l0Sum ? {} : { l0: l0Sum / tokens }) },
    perPosition: {
      ceClean: per(pos.ceClean, pos.nCe),
      ceSpliced: per(pos.ceSpliced, pos.nCe),
      kl: per(pos.kl, pos.nKl),
    },
  };
}
