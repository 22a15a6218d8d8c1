// The LM's side of a splice step: the clean activations at the hook (the prefix session), and
// KL(p_clean ‖ p_spliced) with its gradient with respect to the spliced-in activations (one
// session that runs the clean and the spliced suffix: lm/step_graphs.ts). Only [B·T, d] tensors
// cross between the LM and the SAE. A batch can be split into micro-batches of whole sequences
// whose gradients add up to the whole batch's, so a step's peak memory follows the micro-batch.
// On the WebGPU EP with `zeroCopy`, x, x̂ and ∂KL/∂x̂ stay GPU buffers shared by ONNX Runtime
// and the WGSL kernels (ORT runs on our GPUDevice): nothing [B·T, d] crosses to the host.
import type { ModelProto } from "../lm/onnx.ts";
import {
  createSessions,
  type ExecutionProvider,
  type LmSession,
  ort,
  tensorFromGpu,
} from "../lm/session.ts";
import { feedsFor } from "../lm/signature.ts";
import { klStepGraph, positionMask } from "../lm/step_graphs.ts";
import { prefix } from "../lm/surgery.ts";
import type { LmLora } from "./adapters/lm_lora.ts";

export interface LmStepSessions {
  /** The LM up to the hook: token ids → clean activations. */
  prefix: LmSession;
  /** klStepGraph: clean and spliced activations → kl_mean, grad_kl_hook (null for MSE only). */
  kl: LmSession | null;
  /** Whether the sessions leave activations and gradients on the GPU. */
  zeroCopy: boolean;
  release(): Promise<void>;
}

export async function createLmStepSessions(
  model: ModelProto,
  hook: string,
  needKl: boolean,
  ep: ExecutionProvider,
  device?: GPUDevice,
  /** The KL step's graph when it is not the model's own (LoRA on the LM). */
  klModel?: ModelProto,
  /** WebGPU EP: the activations and ∂KL/∂x̂ stay on the GPU (see SpliceLmOptions.zeroCopy). */
  zeroCopy = false,
  /** The prefix's graph when it is not the model cut at the hook (a transcoder's, three outputs). */
  prefixModel?: ModelProto,
): Promise<LmStepSessions> {
  if (zeroCopy && ep !== "webgpu") {
    throw new Error(
      `zero-copy activations need the ep "webgpu" (ORT on our GPUDevice), not "${ep}"`,
    );
  }
  const [pre, kl] = await createSessions([
    {
      model: prefixModel ?? prefix(model, hook),
      opts: { ep, device, gpuOutputs: zeroCopy ? "all" : undefined },
    },
    needKl
      ? {
        model: klModel ?? klStepGraph(model, hook),
        opts: { ep, device, gpuOutputs: zeroCopy ? ["grad_kl_hook"] : undefined },
      }
      : null,
  ]);
  return {
    prefix: pre!,
    kl,
    zeroCopy,
    release: async () => {
      await pre!.release();
      await kl?.release();
    },
  };
}

/** [B·T, d] activations: on the host, or (zero-copy) a GPU buffer. */
export type Act = Float32Array | GPUBuffer;

/** a as a host array; GPU-resident activations reaching `where` (a host-only path) are a bug. */
export function hostAct(a: Act, where: string): Float32Array {
  if (a instanceof GPUBuffer) {
    throw new Error(`internal: GPU-resident activations reached ${where}`);
  }
  return a;
}

export interface KlResult {
  /** Mean KL over the counted positions. */
  kl: number;
  /** ∂kl/∂y [B·T·d], zero at skipped positions (they reach the LM unspliced). */
  grad: Act;
  /** ∂kl/∂ the clean activations kept at skipped positions (zero elsewhere), or null. */
  gradClean: Float32Array | null;
  /** ∂kl/∂ each LM adapter read by the KL graph. */
  adapters: Record<string, Float32Array>;
}

export interface SpliceLmOptions {
  /** The hook and the width the SAE reads there (checked against the prefix's output). */
  hook: string;
  width: number;
  batch: number;
  seq: number;
  /** Positions 0..skip−1 of each sequence keep their clean activations and are not counted. */
  skipFirstPositions?: number;
  /** Sequences per KL session run (default: the whole batch). */
  microBatch?: number;
  /** LoRA on the LM: adapter feeds, and before the hook, the activations the SAE reads. */
  lora?: LmLora;
  ep: ExecutionProvider;
  device?: GPUDevice;
}

export class SpliceLm {
  readonly #mask: Float32Array;
  readonly #micro: number;
  #pre: { fwd: LmSession; grad: LmSession } | null = null;
  #ids: BigInt64Array | null = null;
  /** GPU outputs of the current step, disposed when the next one starts. */
  #held: ort.Tensor[] = [];
  #scratch: GPUBuffer | null = null;
  /**
   * Every output of the prefix at the last activations() on the host path, by name (a
   * transcoder's prefix also outputs the MLP's input and output beside the spliced hook).
   */
  lastOutputs: Record<string, Float32Array> = {};

  private constructor(readonly sessions: LmStepSessions, readonly o: SpliceLmOptions) {
    const { batch: B, seq: T } = o;
    this.#mask = positionMask(B, T, o.skipFirstPositions ?? 0);
    this.#micro = o.microBatch ?? B;
    if (!(Number.isInteger(this.#micro) && this.#micro >= 1 && this.#micro <= B)) {
      throw new RangeError(
        `micro_batch must be an integer in [1, batch_size=${B}], got ${o.microBatch}`,
      );
    }
    if (sessions.zeroCopy && (this.#micro !== B || o.lora || !o.device)) {
      throw new Error(
        "zero-copy activations run the KL step on the whole batch, without LM adapters, on the " +
          "shared GPUDevice: make the sessions without zeroCopy for micro-batches or LoRA",
      );
    }
  }

  /** Whether activations and ∂KL/∂x̂ stay GPU buffers. */
  get zeroCopy(): boolean {
    return this.sessions.zeroCopy;
  }

  static async create(sessions: LmStepSessions, o: SpliceLmOptions): Promise<SpliceLm> {
    const lm = new SpliceLm(sessions, o);
    const lora = o.lora;
    if (lora?.hasPrefix) {
      const opts = { ep: o.ep, device: o.device };
      const [fwd, grad] = await createSessions([
        { model: lora.prefixModel(), opts },
        { model: lora.prefixGradModel(), opts },
      ]);
      lm.#pre = { fwd: fwd!, grad: grad! };
    }
    return lm;
  }

  get adaptsPrefix(): boolean {
    return this.#pre !== null;
  }

  #feeds(s: LmSession, own: Record<string, ort.Tensor>, ids: BigInt64Array, batch: number) {
    return feedsFor(s.inputNames, { ...this.o.lora?.feeds(s.inputNames), ...own }, {
      ids,
      batch,
      seq: this.o.seq,
    });
  }

  /** The clean activations at the hook, and those the SAE reads (they differ with prefix LoRA). */
  async activations(ids: BigInt64Array): Promise<{ clean: Act; x: Act }> {
    this.#ids = ids;
    for (const t of this.#held.splice(0)) t.dispose();
    const p = this.sessions.prefix;
    const out = await p.run(this.#feeds(p, {}, ids, this.o.batch));
    const t = out[p.outputNames[0]];
    if (this.zeroCopy) {
      this.#held.push(t);
      const d = t.dims[2];
      if (d !== this.o.width) {
        throw new Error(
          `the SAE reads ${this.o.width}-wide activations but hook "${this.o.hook}" is ${d} wide`,
        );
      }
      const buf = t.gpuBuffer as unknown as GPUBuffer;
      return { clean: buf, x: buf };
    }
    const clean = t.data as Float32Array;
    this.lastOutputs = Object.fromEntries(
      Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]),
    );
    const d = clean.length / (this.o.batch * this.o.seq);
    if (d !== this.o.width) {
      throw new Error(
        `the SAE reads ${this.o.width}-wide activations but hook "${this.o.hook}" is ${d} wide`,
      );
    }
    if (!this.#pre) return { clean, x: clean };
    const f = this.#pre.fwd;
    const adapted = await f.run(this.#feeds(f, {}, ids, this.o.batch));
    return { clean, x: adapted[f.outputNames[0]].data as Float32Array };
  }

  /** KL(p_clean ‖ p_y) over the counted positions and its gradients, micro-batch by micro-batch. */
  async kl(clean: Act, y: Act): Promise<KlResult> {
    const s = this.sessions.kl;
    if (!s) throw new Error("SpliceLm.kl: the sessions were made without the KL step");
    if (clean instanceof GPUBuffer || y instanceof GPUBuffer) {
      if (!(clean instanceof GPUBuffer && y instanceof GPUBuffer)) {
        throw new Error("SpliceLm.kl: clean and spliced activations must both be GPU buffers");
      }
      return await this.#klOnGpu(s, clean, y);
    }
    const ids = this.#ids!;
    const { batch: B, seq: T } = this.o;
    const d = clean.length / (B * T);
    const skip = this.o.skipFirstPositions ?? 0;
    // The spliced run keeps the clean activations at skipped positions.
    const spliced = skip ? y.slice() : y;
    if (skip) {
      for (let b = 0; b < B; b++) {
        spliced.set(clean.subarray(b * T * d, (b * T + skip) * d), b * T * d);
      }
    }
    let counted = 0;
    for (const m of this.#mask) counted += m;
    const grad = new Float32Array(B * T * d);
    const adapters: Record<string, Float32Array> = {};
    let kl = 0;
    for (let b0 = 0; b0 < B; b0 += this.#micro) {
      const nb = Math.min(this.#micro, B - b0);
      const rows = [b0 * T, (b0 + nb) * T];
      const mask = this.#mask.subarray(rows[0], rows[1]);
      let share = 0;
      for (const m of mask) share += m;
      if (share === 0) continue;
      // Each micro-batch's mean, weighted by its share of the counted positions, adds up to the
      // whole batch's mean; so do the gradients.
      const w = share / counted;
      const act = (a: Float32Array) =>
        new ort.Tensor("float32", a.subarray(rows[0] * d, rows[1] * d), [nb, T, d]);
      const out = await s.run(this.#feeds(
        s,
        {
          hook_clean: act(clean),
          hook: act(spliced),
          kl_mask: new ort.Tensor("float32", mask, [nb, T]),
        },
        ids.subarray(rows[0], rows[1]),
        nb,
      ));
      kl += w * (out["kl_mean"].data as Float32Array)[0];
      const g = out["grad_kl_hook"].data as Float32Array;
      for (let e = 0; e < g.length; e++) grad[rows[0] * d + e] = w * g[e];
      for (const [name, t] of Object.entries(out)) {
        if (!name.startsWith("grad_") || name === "grad_kl_hook") continue;
        const key = name.slice(5);
        const v = t.data as Float32Array;
        const acc = adapters[key] ??= new Float32Array(v.length);
        for (let e = 0; e < v.length; e++) acc[e] += w * v[e];
      }
    }
    let gradClean: Float32Array | null = null;
    if (skip) {
      gradClean = new Float32Array(grad.length);
      for (let r = 0; r < B * T; r++) {
        if (this.#mask[r]) continue;
        gradClean.set(grad.subarray(r * d, (r + 1) * d), r * d);
        grad.fill(0, r * d, (r + 1) * d);
      }
    }
    return { kl, grad, gradClean, adapters };
  }

  /**
   * The KL step with every [B·T, d] tensor a GPU buffer: skipped positions get the clean rows by
   * device copies into a scratch buffer (x̂ stays as the SAE made it), and their gradient rows are
   * cleared on the device.
   */
  async #klOnGpu(s: LmSession, clean: GPUBuffer, y: GPUBuffer): Promise<KlResult> {
    const device = this.o.device!;
    const { batch: B, seq: T, width: d } = this.o;
    const skip = this.o.skipFirstPositions ?? 0;
    const row = d * 4, bytes = B * T * row;
    let spliced = y;
    if (skip) {
      if (!this.#scratch || this.#scratch.size < bytes) {
        this.#scratch?.destroy();
        this.#scratch = device.createBuffer({
          label: "splice.spliced",
          size: bytes,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        });
      }
      const enc = device.createCommandEncoder({ label: "splice.keep_clean" });
      enc.copyBufferToBuffer(y, 0, this.#scratch, 0, bytes);
      for (let b = 0; b < B; b++) {
        enc.copyBufferToBuffer(clean, b * T * row, this.#scratch, b * T * row, skip * row);
      }
      device.queue.submit([enc.finish()]);
      spliced = this.#scratch;
    }
    const out = await s.run(this.#feeds(
      s,
      {
        hook_clean: tensorFromGpu(clean, "float32", [B, T, d]),
        hook: tensorFromGpu(spliced, "float32", [B, T, d]),
        kl_mask: new ort.Tensor("float32", this.#mask, [B, T]),
      },
      this.#ids!,
      B,
    ));
    const g = out["grad_kl_hook"];
    this.#held.push(g);
    const grad = g.gpuBuffer as unknown as GPUBuffer;
    if (skip) {
      const enc = device.createCommandEncoder({ label: "splice.skip_grad" });
      for (let b = 0; b < B; b++) enc.clearBuffer(grad, b * T * row, skip * row);
      device.queue.submit([enc.finish()]);
    }
    return { kl: (out["kl_mean"].data as Float32Array)[0], grad, gradClean: null, adapters: {} };
  }

  /** ∂⟨hook, upstream⟩/∂(LoRA adapters before the hook) for the last activations' batch. */
  async prefixGrads(upstream: Float32Array): Promise<Record<string, Float32Array>> {
    if (!this.#pre) return {};
    const { batch: B, seq: T } = this.o;
    const g = this.#pre.grad;
    const out = await g.run(this.#feeds(
      g,
      {
        upstream: new ort.Tensor("float32", upstream, [B, T, upstream.length / (B * T)]),
      },
      this.#ids!,
      B,
    ));
    const grads: Record<string, Float32Array> = {};
    for (const name of this.o.lora!.prefixNames) {
      grads[name] = out[`grad_${name}`].data as Float32Array;
    }
    return grads;
  }

  async release(): Promise<void> {
    for (const t of this.#held.splice(0)) t.dispose();
    this.#scratch?.destroy();
    await this.#pre?.fwd.release();
    await this.#pre?.grad.release();
  }
}
