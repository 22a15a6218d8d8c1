import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { makeModel, makeNode } from "../../lm/graph.ts";
import { addLossHeads } from "../../lm/loss.ts";
import { DataType } from "../../lm/onnx.ts";
import { toValueInfo } from "../../lm/shapes.ts";
import { suffix, tap } from "../../lm/surgery.ts";
import { freshRng, relError } from "../util/rand.ts";
import { HOOK, loadReference, loadTiny, runWasm } from "./fixture.ts";

/** float64 reference: per-token KL and CE and their (masked) means. */
function reference(
  logits: ArrayLike<number>,
  lpClean: ArrayLike<number>,
  labels: BigInt64Array,
  B: number,
  T: number,
  V: number,
  klMask?: ArrayLike<number>,
  ceMask?: ArrayLike<number>,
) {
  const lp = new Float64Array(B * T * V);
  for (let r = 0; r < B * T; r++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r * V + v] - mx);
    const lse = mx + Math.log(s);
    for (let v = 0; v < V; v++) lp[r * V + v] = logits[r * V + v] - lse;
  }
  const kl = new Float64Array(B * T);
  for (let r = 0; r < B * T; r++) {
    for (let v = 0; v < V; v++) {
      const c = lpClean[r * V + v];
      kl[r] += Math.exp(c) * (c - lp[r * V + v]);
    }
  }
  const ce = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) {
      ce[b * (T - 1) + t] = -lp[(b * T + t) * V + Number(labels[b * (T - 1) + t])];
    }
  }
  const mean = (x: Float64Array, m?: ArrayLike<number>) => {
    let num = 0, den = 0;
    for (let i = 0; i < x.length; i++) {
      const w = m ? m[i] : 1;
      num += w * x[i];
      den += w;
    }
    return num / den;
  };
  return { kl, ce, klMean: mean(kl, klMask), ceMean: mean(ce, ceMask) };
}

function logSoftmax64(x: ArrayLike<number>, rows: number, V: number): Float64Array {
  const out = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, x[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(x[r * V + v] - mx);
    for (let v = 0; v < V; v++) out[r * V + v] = x[r * V + v] - mx - Math.log(s);
  }
  return out;
}

// ORT web's wasm build has no float64 kernels for Exp, Sub, Mul, LogSoftmax… (checked: session
// creation fails), so float64 heads are built and type-checked below but only float32 ones run.
for (const elemType of [DataType.FLOAT]) {
  const f64 = elemType === DataType.DOUBLE;
  Deno.test(`loss heads (${f64 ? "float64" : "float32"}) match a float64 reference`, async () => {
    const rng = freshRng("loss");
    const B = 2 + rng.int(2), T = 3 + rng.int(5), V = 5 + rng.int(20);
    const model = makeModel({
      nodes: [makeNode("Identity", ["x"], ["logits"])],
      inputs: [toValueInfo("x", { elemType, dims: ["batch", "seq", V] })],
      outputs: [toValueInfo("logits", { elemType, dims: ["batch", "seq", V] })],
    });
    const { model: heads, names } = addLossHeads(model, { mask: true });
    assertEquals(names.klMean, "kl_mean");
    assertEquals(names.ceMask, "ce_mask");
    const Arr = f64 ? Float64Array : Float32Array;
    const logits = Arr.from(rng.normals64(B * T * V, 2));
    const lpClean = Arr.from(logSoftmax64(rng.normals64(B * T * V, 2), B * T, V));
    const labels = BigInt64Array.from({ length: B * (T - 1) }, () => BigInt(rng.int(V)));
    const klMask = Arr.from(
      Array.from({ length: B * T }, (_, i) => (i % T === 0 ? 0 : rng.uniform())),
    );
    const ceMask = Arr.from(
      Array.from({ length: B * (T - 1) }, () => (rng.uniform() < 0.3 ? 0 : 1)),
    );
    ceMask[0] = 1;
    const out = await runWasm(heads, {
      x: { data: logits, dims: [B, T, V] },
      logprobs_clean: { data: lpClean, dims: [B, T, V] },
      labels: { data: labels, dims: [B, T - 1] },
      kl_mask: { data: klMask, dims: [B, T] },
      ce_mask: { data: ceMask, dims: [B, T - 1] },
    });
    const ref = reference(logits, lpClean, labels, B, T, V, klMask, ceMask);
    const tol = f64 ? 1e-12 : 1e-5;
    assertEquals(out.kl_per_token.dims, [B, T]);
    assertEquals(out.ce_per_token.dims, [B, T - 1]);
    assertEquals(out.kl_mean.dims, []);
    assertLess(relError(out.kl_per_token.data as Float64Array, ref.kl), tol);
    assertLess(relError(out.ce_per_token.data as Float64Array, ref.ce), tol);
    assertLess(relError(out.kl_mean.data as Float64Array, [ref.klMean]), tol);
    assertLess(relError(out.ce_mean.data as Float64Array, [ref.ceMean]), tol);

    // Without masks the means are plain means.
    const plain = addLossHeads(model, {}).model;
    const o2 = await runWasm(plain, {
      x: { data: logits, dims: [B, T, V] },
      logprobs_clean: { data: lpClean, dims: [B, T, V] },
      labels: { data: labels, dims: [B, T - 1] },
    });
    const r2 = reference(logits, lpClean, labels, B, T, V);
    assertLess(relError(o2.kl_mean.data as Float64Array, [r2.klMean]), tol);
    assertLess(relError(o2.ce_mean.data as Float64Array, [r2.ceMean]), tol);
  });
}

Deno.test("loss heads on the tiny-neox suffix match reference.safetensors", async () => {
  const model = await loadTiny();
  const ref = await loadReference();
  const { B, T, V, D } = ref;
  const clean = await runWasm(tap(model, HOOK, { logProbs: true }), {
    input_ids: { data: ref.inputIds, dims: [B, T] },
  });
  const { model: heads } = addLossHeads(suffix(model, HOOK), { mask: true });
  const labels = new BigInt64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) labels[b * (T - 1) + t] = ref.inputIds[b * T + t + 1];
  }
  const ones = (n: number) => new Float32Array(n).fill(1);
  const out = await runWasm(heads, {
    [HOOK]: { data: ref.recon, dims: [B, T, D] },
    logprobs_clean: { data: clean.logprobs.data as Float32Array, dims: [B, T, V] },
    labels: { data: labels, dims: [B, T - 1] },
    kl_mask: { data: ones(B * T), dims: [B, T] },
    ce_mask: { data: ones(B * (T - 1)), dims: [B, T - 1] },
  });
  assertLess(relError(out.kl_per_token.data as Float32Array, ref.klPerToken), 1e-4);
  assertLess(relError(out.ce_per_token.data as Float32Array, ref.ceSpliced), 1e-4);
  const mean = (x: Float32Array) => x.reduce((a, b) => a + b, 0) / x.length;
  assertLess(relError(out.kl_mean.data as Float32Array, [mean(ref.klPerToken)]), 1e-4);
  assertLess(relError(out.ce_mean.data as Float32Array, [mean(ref.ceSpliced)]), 1e-4);
  assertLess(Math.abs(mean(ref.ceSpliced) - 1.6306), 1e-3); // README's stated mean
});

Deno.test("loss heads on float64 logits are float64 throughout", () => {
  const V = 7;
  const model = makeModel({
    nodes: [makeNode("Identity", ["x"], ["logits"])],
    inputs: [toValueInfo("x", { elemType: DataType.DOUBLE, dims: ["batch", "seq", V] })],
    outputs: [toValueInfo("logits", { elemType: DataType.DOUBLE, dims: ["batch", "seq", V] })],
  });
  const { model: heads } = addLossHeads(model, { mask: true });
  const types = new Map(
    [...heads.graph!.input!, ...heads.graph!.output!].map((v) => [
      v.name,
      v.type!.tensorType!.elemType,
    ]),
  );
  for (const n of ["logprobs_clean", "kl_mask", "ce_mask", "kl_per_token", "ce_mean"]) {
    assertEquals(types.get(n), DataType.DOUBLE, n);
  }
  assertEquals(types.get("labels"), DataType.INT64);
});

Deno.test("loss heads: bad logits and name clashes are errors", async () => {
  const model = await loadTiny();
  assertThrows(() => addLossHeads(model, { kl: false, ce: false }), Error, "neither");
  const e = assertThrows(() => addLossHeads(model, { logits: "/blocks.0/Shape_output_0" }));
  assert(e.message.includes("rank-3"), e.message);
  const once = addLossHeads(model).model;
  assertThrows(() => addLossHeads(once), Error, "already has a tensor");
});
