// One KL+MSE fine-tune step through the real loop — ORT tap and suffix sessions whose KL gradient
// comes from our autodiff — against the closed-form float64 reference of Eq. 8–9 on a tiny graph
// whose LM suffix is linear (logits = x̂·U).
import { assertEquals, assertLess } from "@std/assert";
import { DataType } from "../../lm/onnx.ts";
import { runFinetune } from "../../train/finetune.ts";
import { GraphBuilder } from "../util/onnx_graph.ts";
import { freshRng, relError } from "../util/rand.ts";
import { referenceStep, type Sae64 } from "../util/reference_finetune.ts";
import { ReferenceTrainer } from "../util/reference_trainer.ts";

const V = 11, d = 6, m = 10, k = 3, B = 2, T = 5;

/** An "LM" whose hook is the token embedding and whose logits are one linear map of it. */
function tinyLinearLm(rng: ReturnType<typeof freshRng>) {
  const E = rng.normals(V * d), U = rng.normals(d * V, 0.7);
  const g = new GraphBuilder(DataType.FLOAT);
  const ids = g.input("input_ids", ["batch", "seq"], DataType.INT64);
  const resid = g.rename(g.node("Gather", [g.init("E", [V, d], E), ids]), "resid");
  g.rename(g.node("MatMul", [resid, g.init("U", [d, V], U)]), "logits");
  g.output("logits", ["batch", "seq", V]);
  return { E, U, model: g.build() };
}

Deno.test({
  name: "one kl_mse step of the loop equals the float64 Eq. 8–9 reference (tiny linear LM)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("finetune-step");
    const { E, U, model } = tinyLinearLm(rng);

    const sae64 = (): Sae64 => {
      return {
        dIn: d,
        dSae: m,
        k,
        W_enc: Float64Array.from(Wenc),
        b_enc: Float64Array.from(benc),
        W_dec: Float64Array.from(Wdec),
        b_dec: Float64Array.from(bdec),
      };
    };
    const Wenc = rng.normals64(d * m, 0.5), benc = rng.normals64(m, 0.1);
    const Wdec = rng.normals64(m * d, 0.5), bdec = rng.normals64(d, 0.1);
    const tokens = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));

    const trainer = new ReferenceTrainer(sae64(), { weightDecay: 0.01, clip: 1.0 });
    const seen: number[] = [];
    const out = await runFinetune({
      objective: "kl_mse",
      model,
      hook: "resid",
      ep: "wasm",
      sae: trainer,
      data: { next: () => tokens, cursor: 0, seek: () => {} },
      batchSize: B,
      seqLen: T,
      steps: 1,
      schedule: { lr: 1e-2 },
      metricsEvery: 1,
      onMetrics: (mt) => void seen.push(mt.alpha!),
    });
    assertEquals(out.last!.step, 1);

    // The reference: x = E[ids], clean log-probs of x·U, KL gradient in closed form.
    const x = new Float64Array(B * T * d), lp = new Float64Array(B * T * V);
    for (let t = 0; t < B * T; t++) {
      for (let i = 0; i < d; i++) x[t * d + i] = E[Number(tokens[t]) * d + i];
      const z = Array.from({ length: V }, (_, v) => {
        let s = 0;
        for (let i = 0; i < d; i++) s += x[t * d + i] * U[i * V + v];
        return s;
      });
      const mx = Math.max(...z), lse = mx + Math.log(z.reduce((a, b) => a + Math.exp(b - mx), 0));
      for (let v = 0; v < V; v++) lp[t * V + v] = z[v] - lse;
    }
    const ref = sae64();
    const r = referenceStep(ref, { m: {}, v: {}, t: 0 }, x, Float64Array.from(U), lp, B * T, V, {
      objective: "kl_mse",
      lr: 1e-2,
      weightDecay: 0.01,
      clip: 1.0,
    });
    assertLess(Math.abs(seen[0] - r.alpha) / r.alpha, 1e-4, `alpha ${seen[0]} vs ${r.alpha}`);
    assertLess(Math.abs(trainer.lastAlphaInputs!.wExt - 0.5 * r.alpha) / r.alpha, 1e-4);
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
      assertLess(relError(trainer.lastGrads[name], r.grads[name]), 1e-4, `∂loss/∂${name}`);
    }
    // And the step applied them: weights moved from where they started.
    assertLess(0, relError(trainer.sae.W_dec, sae64().W_dec));
  },
});

Deno.test({
  name:
    "skipFirstPositions: those positions splice clean, leave the KL mean and get no KL gradient",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("finetune-skip");
    const { E, U, model } = tinyLinearLm(rng);
    const tokens = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const noise = rng.normals(B * T * d, 0.3);
    // A stand-in SAE: x̂ = x + fixed noise; it records the KL gradient it is handed.
    const run = async (skip: number) => {
      let gExt: Float32Array | null = null, kl = 0;
      await runFinetune({
        objective: "kl_mse",
        model,
        hook: "resid",
        ep: "wasm",
        sae: {
          dIn: d,
          forward: (x) => Promise.resolve({ xhat: x.map((v, e) => v + noise[e]), mse: 1, l0: 0 }),
          backwardAndStep: (o) => {
            gExt = (o.gExt as Float32Array).map((v) => v * o.wExt);
            return Promise.resolve({ gradNorm: 1, aux: 0, dead: 0 });
          },
          state: () => Promise.resolve(new Map()),
          restore: () => Promise.resolve(),
        },
        data: { next: () => tokens, cursor: 0, seek: () => {} },
        batchSize: B,
        seqLen: T,
        steps: 1,
        schedule: { lr: 1e-3 },
        skipFirstPositions: skip,
        metricsEvery: 1,
        onMetrics: (m) => void (kl = m.kl!),
      });
      return { gExt: gExt! as Float32Array, kl };
    };
    // Per-token KL of the position-wise LM, in float64.
    const klAt = (t: number) => {
      const lp = (h: (i: number) => number) => {
        const z = Array.from({ length: V }, (_, v) => {
          let s = 0;
          for (let i = 0; i < d; i++) s += h(i) * U[i * V + v];
          return s;
        });
        const mx = Math.max(...z), lse = mx + Math.log(z.reduce((a, b) => a + Math.exp(b - mx), 0));
        return z.map((v) => v - lse);
      };
      const clean = lp((i) => E[Number(tokens[t]) * d + i]);
      const spliced = lp((i) => E[Number(tokens[t]) * d + i] + noise[t * d + i]);
      return clean.reduce((s, c, v) => s + Math.exp(c) * (c - spliced[v]), 0);
    };
    const skip = 2;
    let want = 0;
    for (let t = 0; t < B * T; t++) if (t % T >= skip) want += klAt(t) / (B * (T - skip));
    const all = await run(0), masked = await run(skip);
    assertLess(Math.abs(masked.kl - want) / want, 1e-4, `masked KL ${masked.kl} vs ${want}`);
    for (let t = 0; t < B * T; t++) {
      const a = all.gExt.subarray(t * d, (t + 1) * d), b = masked.gExt.subarray(t * d, (t + 1) * d);
      if (t % T < skip) assertEquals([...b], new Array(d).fill(0), `position ${t % T}`);
      // Same direction as the unmasked run's per-token gradient (the position-wise LM makes each
      // token's gradient its own); only the KL weight α and the mean's denominator differ.
      else assertLess(Math.abs(cosine(a, b) - 1), 1e-5, `position ${t % T}`);
    }
  },
});

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] ** 2;
    bb += b[i] ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}
