// A GPU SAE trainer on dense kernels (shaders/matmul.wgsl, shaders/sae_dense.wgsl) and the shared
// optimizer (gpu/clip.ts, gpu/adamw.ts, gpu/decoder_norm.ts): ReLU with the decoder-norm-weighted
// L1, and TopK computed densely (the sparse TopK kernels make the same step cheaper).
// It implements train/finetune.ts's SaeTrainer; x, x̂ and ∂KL/∂x̂ cross to the host once a step,
// which is where the LM runs on machines without a GPU (ORT's wasm EP).
import { createBuffer, readF32, write } from "../gpu/buffers.ts";
import { GradClipper } from "../gpu/clip.ts";
import { AdamW } from "../gpu/adamw.ts";
import { DecoderNorm } from "../gpu/decoder_norm.ts";
import { Matmul } from "../gpu/matmul.ts";
import { FiringTracker } from "../gpu/metrics.ts";
import { grid1d, loadShader } from "../gpu/pipelines.ts";
import type { GpuContext } from "../gpu/device.ts";
import type { OwnedTrainer } from "../jobs/finetune_job.ts";
import {
  downloadSae,
  makeParamGroups,
  type ParamGroup,
  type SaeParams,
  uploadSae,
} from "./params.ts";
import type { Sae } from "./types.ts";

const WG = 64, K_MAX = 256;
type Entry =
  | "center"
  | "topk_relu"
  | "relu"
  | "dxhat"
  | "mask_grad"
  | "col_sum"
  | "bdec_grad"
  | "row_norms"
  | "l1_dec"
  | "count_active";

export interface DenseTrainerOptions {
  weightDecay: number;
  gradClip: number;
  decoderConstraint: boolean;
  /** Tokens without firing after which a latent counts as dead. */
  deadWindowTokens?: number;
}

interface Batch {
  n: number;
  x: GPUBuffer;
  xc: GPUBuffer;
  pre: GPUBuffer;
  h: GPUBuffer;
  xhat: GPUBuffer;
  dx: GPUBuffer;
  dh: GPUBuffer;
  l0: GPUBuffer;
  enc: Matmul;
  dec: Matmul;
  dhMm: Matmul;
  gEnc: Matmul;
  gDec: Matmul;
}

export class DenseGpuTrainer implements OwnedTrainer {
  readonly dIn: number;
  readonly device: GPUDevice;
  readonly params: SaeParams;
  readonly grads: Record<"W_enc" | "b_enc" | "W_dec" | "b_dec", GPUBuffer>;
  #groups: ParamGroup[];
  #adam: AdamW;
  #clip: GradClipper;
  #decNorm: DecoderNorm | null;
  #firing: FiringTracker;
  #pipelines = new Map<Entry, GPUComputePipeline>();
  #batch: Batch | null = null;
  #scratch: { norms: GPUBuffer; hsum: GPUBuffer; dxsum: GPUBuffer };
  #uniforms = new Map<string, GPUBuffer>();
  #lastMse = 0;

  constructor(readonly gpu: GpuContext, readonly sae: Sae, readonly opts: DenseTrainerOptions) {
    const { cfg } = sae;
    if (cfg.kind !== "relu" && cfg.kind !== "topk") {
      throw new Error(
        `the dense GPU trainer trains relu and topk SAEs; ${cfg.kind} is not supported yet`,
      );
    }
    if (cfg.kind === "topk" && !(cfg.k && cfg.k >= 1 && cfg.k <= K_MAX)) {
      throw new RangeError(`topk SAE: k must be in [1, ${K_MAX}], got ${cfg.k}`);
    }
    this.device = gpu.device;
    this.dIn = cfg.dIn;
    const d = cfg.dIn, n = cfg.dSae;
    this.params = uploadSae(this.device, sae);
    this.grads = {
      W_enc: createBuffer(this.device, d * n * 4, "grad.W_enc"),
      b_enc: createBuffer(this.device, n * 4, "grad.b_enc"),
      W_dec: createBuffer(this.device, n * d * 4, "grad.W_dec"),
      b_dec: createBuffer(this.device, d * 4, "grad.b_dec"),
    };
    this.#groups = makeParamGroups(this.device, cfg, this.params, this.grads, {
      trainable: (name) => name !== "threshold",
      // As torch.optim.AdamW(sae.parameters(), weight_decay=…) in the paper's recipe: biases too.
      decay: () => true,
    });
    this.#adam = new AdamW(this.device, this.#groups, { weightDecay: opts.weightDecay });
    this.#clip = new GradClipper(
      this.device,
      this.#groups.map((g) => ({ grad: g.grad, size: g.size })),
    );
    this.#decNorm = opts.decoderConstraint
      ? new DecoderNorm(this.device, this.params.W_dec, n, d)
      : null;
    this.#firing = new FiringTracker(this.device, n, opts.deadWindowTokens ?? 1_000_000);
    this.#scratch = {
      norms: createBuffer(this.device, n * 4, "dense.norms"),
      hsum: createBuffer(this.device, 2 * n * 4, "dense.hsum-norms"),
      dxsum: createBuffer(this.device, d * 4, "dense.dxsum"),
    };
  }

  #layout: GPUPipelineLayout | null = null;

  // One explicit layout for every entry: with "auto", entries that leave in1 unread would get a
  // smaller layout and the shared bind-group shape would not fit them.
  #pipeline(e: Entry): GPUComputePipeline {
    let p = this.#pipelines.get(e);
    if (!p) {
      const ro = { type: "read-only-storage" } as const;
      this.#layout ??= this.device.createPipelineLayout({
        bindGroupLayouts: [this.device.createBindGroupLayout({
          entries: [
            { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: ro },
            { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: ro },
            { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
            { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
          ],
        })],
      });
      p = this.device.createComputePipeline({
        label: `sae_dense.${e}`,
        layout: this.#layout,
        compute: {
          module: this.device.createShaderModule({ code: loadShader("sae_dense") }),
          entryPoint: e,
          constants: { WG },
        },
      });
      this.#pipelines.set(e, p);
    }
    return p;
  }

  /** A uniform per call site, so several dispatches in one pass keep their own scalars. */
  #uniform(site: string, rows: number, cols: number, k = 0, a = 0, b = 0): GPUBuffer {
    let u = this.#uniforms.get(site);
    if (!u) {
      u = this.device.createBuffer({
        size: 32,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.#uniforms.set(site, u);
    }
    const buf = new ArrayBuffer(32);
    new Uint32Array(buf, 0, 4).set([rows, cols, k, 0]);
    new Float32Array(buf, 16, 4).set([a, b, 0, 0]);
    this.device.queue.writeBuffer(u, 0, buf);
    return u;
  }

  #run(
    pass: GPUComputePassEncoder,
    e: Entry,
    site: string,
    bufs: [GPUBuffer, GPUBuffer, GPUBuffer],
    threads: number,
    dims: { rows: number; cols: number; k?: number; a?: number; b?: number },
  ): void {
    const p = this.#pipeline(e);
    const u = this.#uniform(site, dims.rows, dims.cols, dims.k ?? 0, dims.a ?? 0, dims.b ?? 0);
    pass.setPipeline(p);
    pass.setBindGroup(
      0,
      this.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: bufs[0] } },
          { binding: 1, resource: { buffer: bufs[1] } },
          { binding: 2, resource: { buffer: bufs[2] } },
          { binding: 3, resource: { buffer: u } },
        ],
      }),
    );
    const [x, y] = grid1d(Math.ceil(threads / WG));
    pass.dispatchWorkgroups(x, y);
  }

  #batchFor(n: number): Batch {
    if (this.#batch?.n === n) return this.#batch;
    this.#freeBatch();
    const d = this.dIn, m = this.sae.cfg.dSae, dev = this.device;
    const buf = (floats: number, label: string) => createBuffer(dev, floats * 4, label);
    this.#batch = {
      n,
      x: buf(n * d, "dense.x"),
      xc: buf(n * d, "dense.xc"),
      pre: buf(n * m, "dense.pre"),
      h: buf(n * m, "dense.h"),
      xhat: buf(n * d, "dense.xhat"),
      dx: buf(n * d, "dense.dx"),
      dh: buf(n * m, "dense.dh"),
      l0: buf(n, "dense.l0"),
      enc: new Matmul(dev, { M: n, N: m, K: d }, true),
      dec: new Matmul(dev, { M: n, N: d, K: m }, true),
      dhMm: new Matmul(dev, { M: n, N: m, K: d, transB: true }),
      gEnc: new Matmul(dev, { M: d, N: m, K: n, transA: true }),
      gDec: new Matmul(dev, { M: m, N: d, K: n, transA: true }),
    };
    return this.#batch;
  }

  #freeBatch(): void {
    const b = this.#batch;
    if (!b) return;
    for (const x of [b.x, b.xc, b.pre, b.h, b.xhat, b.dx, b.dh, b.l0]) x.destroy();
    for (const mm of [b.enc, b.dec, b.dhMm, b.gEnc, b.gDec]) mm.destroy();
    this.#batch = null;
  }

  #pass(label: string, record: (pass: GPUComputePassEncoder) => void): void {
    this.gpu.assertAlive();
    const enc = this.device.createCommandEncoder({ label });
    const pass = enc.beginComputePass({ label });
    record(pass);
    pass.end();
    this.device.queue.submit([enc.finish()]);
  }

  async forward(x: Float32Array, n: number) {
    const d = this.dIn, m = this.sae.cfg.dSae, P = this.params;
    if (x.length !== n * d) {
      throw new RangeError(`forward: x has ${x.length} values, expected ${n}×${d}`);
    }
    const b = this.#batchFor(n);
    write(this.device, b.x, x);
    this.#pass("sae.forward", (pass) => {
      this.#run(pass, "center", "center", [b.x, P.b_dec, b.xc], n * d, { rows: n, cols: d });
      b.enc.record(pass, b.xc, P.W_enc, b.pre, P.b_enc);
      if (this.sae.cfg.kind === "topk") {
        this.#run(pass, "topk_relu", "act", [b.pre, b.pre, b.h], n, {
          rows: n,
          cols: m,
          k: this.sae.cfg.k,
        });
      } else {
        this.#run(pass, "relu", "act", [b.pre, b.pre, b.h], n * m, { rows: n, cols: m });
      }
      b.dec.record(pass, b.h, P.W_dec, b.xhat, P.b_dec);
      this.#run(pass, "count_active", "l0", [b.h, b.h, b.l0], n, { rows: n, cols: m });
    });
    const xhat = await readF32(this.device, b.xhat, n * d);
    const l0s = await readF32(this.device, b.l0, n);
    let se = 0;
    for (let e = 0; e < n * d; e++) se += (xhat[e] - x[e]) ** 2;
    this.#lastMse = se / (n * d);
    return { xhat, mse: this.#lastMse, l0: l0s.reduce((a, v) => a + v, 0) / n };
  }

  async backwardAndStep(
    o: { wMse: number; gExt: Float32Array | null; wExt: number; lr: number; l1?: number },
  ) {
    const b = this.#batch;
    if (!b) throw new Error("backwardAndStep before forward");
    const n = b.n,
      d = this.dIn,
      m = this.sae.cfg.dSae,
      P = this.params,
      G = this.grads,
      S = this.#scratch;
    const l1 = this.sae.cfg.kind === "relu" ? (o.l1 ?? this.sae.cfg.l1Coefficient ?? 0) : 0;
    if (o.gExt) {
      if (o.gExt.length !== n * d) {
        throw new RangeError(`∂KL/∂x̂ has ${o.gExt.length} values, expected ${n * d}`);
      }
      write(this.device, b.dx, o.gExt);
    } else {
      write(this.device, b.dx, new Float32Array(n * d));
    }
    this.#pass("sae.backward", (pass) => {
      this.#run(pass, "dxhat", "dxhat", [b.xhat, b.x, b.dx], n * d, {
        rows: n,
        cols: d,
        a: o.wMse * 2 / (n * d),
        b: o.gExt ? o.wExt : 0,
      });
      b.dhMm.record(pass, b.dx, P.W_dec, b.dh);
      this.#run(pass, "row_norms", "norms", [P.W_dec, P.W_dec, S.norms], m, { rows: m, cols: d });
      // With the L1 penalty λ·Σ h_j‖W_dec,j‖ (relu), ∂/∂h_j gains λ‖W_dec,j‖.
      this.#run(pass, "mask_grad", "mask", [b.h, S.norms, b.dh], n * m, {
        rows: n,
        cols: m,
        a: l1 / n,
      });
      b.gEnc.record(pass, b.xc, b.dh, G.W_enc);
      this.#run(pass, "col_sum", "benc", [b.dh, b.dh, G.b_enc], m, { rows: n, cols: m });
      b.gDec.record(pass, b.h, b.dx, G.W_dec);
      this.#run(pass, "col_sum", "dxsum", [b.dx, b.dx, G.b_dec], d, { rows: n, cols: d });
      this.#run(pass, "bdec_grad", "bdec", [P.W_enc, G.b_enc, G.b_dec], d, { rows: d, cols: m });
    });
    if (l1 > 0) {
      // ∂/∂W_dec,j of λ·(Σ_t h_tj)·‖W_dec,j‖/n: needs Σ_t h and the norms side by side.
      this.#pass("sae.l1", (pass) => {
        this.#run(pass, "col_sum", "hsum", [b.h, b.h, S.hsum], m, { rows: n, cols: m });
      });
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(S.norms, 0, S.hsum, m * 4, m * 4);
      this.device.queue.submit([enc.finish()]);
      this.#pass("sae.l1dec", (pass) => {
        this.#run(pass, "l1_dec", "l1dec", [P.W_dec, S.hsum, G.W_dec], m * d, {
          rows: m,
          cols: d,
          a: l1 / n,
        });
      });
    }
    if (this.#decNorm) {
      this.#decNorm.run((pass) => this.#decNorm!.recordRemoveParallel(pass, G.W_dec));
    }
    this.#clip.clip(this.opts.gradClip, false);
    this.#adam.step(o.lr, this.#clip.result);
    if (this.#decNorm) this.#decNorm.run((pass) => this.#decNorm!.recordNormalize(pass));
    this.#pass("sae.firing", (pass) => {
      this.#firing.record(pass, n, { kind: "dense", h: b.h, n: m });
      this.#firing.recordDeadCount(pass);
    });
    const { norm } = await this.#clip.read();
    const dead = await this.#firing.readDead();
    return { gradNorm: norm, aux: 0, dead };
  }

  async state() {
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const g of this.#groups) {
      out.set(g.name, { data: await readF32(this.device, g.param, g.size), shape: [g.size] });
      out.set(`m.${g.name}`, { data: await readF32(this.device, g.m, g.size), shape: [g.size] });
      out.set(`v.${g.name}`, { data: await readF32(this.device, g.v, g.size), shape: [g.size] });
    }
    out.set("adam.t", { data: Float32Array.of(this.#adam.t), shape: [1] });
    return out;
  }

  restore(state: Map<string, { data: Float32Array; shape: number[] }>) {
    for (const g of this.#groups) {
      for (
        const [key, buf] of [[g.name, g.param], [`m.${g.name}`, g.m], [`v.${g.name}`, g.v]] as const
      ) {
        const t = state.get(key);
        if (!t || t.data.length !== g.size) {
          throw new Error(
            `checkpoint: ${key} is missing or has ${t?.data.length} values, expected ${g.size}`,
          );
        }
        write(this.device, buf, t.data);
      }
    }
    this.#adam.t = state.get("adam.t")?.data[0] ?? 0;
    return Promise.resolve();
  }

  async toSae(): Promise<Sae> {
    return await downloadSae(this.device, this.params, this.sae.cfg);
  }

  release(): void {
    this.#freeBatch();
    this.#adam.destroy();
    this.#clip.destroy();
    this.#firing.destroy();
    for (
      const b of [
        ...Object.values(this.grads),
        ...Object.values(this.#scratch),
        ...this.#uniforms.values(),
      ]
    ) {
      b.destroy();
    }
  }
}

export function createDenseTrainer(
  gpu: GpuContext,
  sae: Sae,
  opts: DenseTrainerOptions,
): Promise<DenseGpuTrainer> {
  return Promise.resolve(new DenseGpuTrainer(gpu, sae, opts));
}
