// LoRA on the LM after the hook: at step 0 the KL step's outputs equal the unadapted LM's, the
// gradients with respect to the adapters match float64 finite differences of the step's KL, and
// adapters before the hook are refused with the reason.
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { DataType, decodeModel, encodeModel } from "../../../lm/onnx.ts";
import { createSession, ort } from "../../../lm/session.ts";
import { klStepGraph, positionMask } from "../../../lm/step_graphs.ts";
import { feedsFor } from "../../../lm/signature.ts";
import { initSae } from "../../../sae/init.ts";
import { TopKGpuTrainer } from "../../../sae/topk_trainer.ts";
import { HostAdamW } from "../../../train/adapters/host_adamw.ts";
import { runFinetune } from "../../../train/finetune.ts";
import { testGpu } from "../../util/gpu.ts";
import { prefix } from "../../../lm/surgery.ts";
import { LmLora, LmLoraError } from "../../../train/adapters/lm_lora.ts";
import { type Feeds, finiteDifferenceError } from "../../util/gradcheck.ts";
import { runReference } from "../../util/onnx_interp.ts";
import { freshRng, relError } from "../../util/rand.ts";

const model = decodeModel(
  await Deno.readFile(new URL("../../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
);
const HOOK = "/blocks.1/Add_2_output_0", B = 1, T = 5, D = 128, V = 256;

Deno.test({
  name:
    "LM LoRA after the hook: identity at step 0; adapter gradients vs float64 finite differences",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("lm-lora");
    const lora = new LmLora(model, HOOK, {
      rank: 2,
      alpha: 4,
      layers: "after_hook",
      saeKind: "topk",
    });
    assertEquals(lora.adapters.map((a) => a.name).sort(), [
      "/blocks.2/dense/MatMul",
      "/blocks.2/fc_in/MatMul",
      "/blocks.2/fc_out/MatMul",
      "/blocks.2/qkv/MatMul",
      "/blocks.3/dense/MatMul",
      "/blocks.3/fc_in/MatMul",
      "/blocks.3/fc_out/MatMul",
      "/blocks.3/qkv/MatMul",
    ]);
    const hook = rng.normals(B * T * D, 1.5), clean = rng.normals(B * T * D, 1.5);
    const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const mask = positionMask(B, T);
    const base = {
      hook_clean: new ort.Tensor("float32", clean, [B, T, D]),
      hook: new ort.Tensor("float32", hook, [B, T, D]),
      kl_mask: new ort.Tensor("float32", mask, [B, T]),
      input_ids: new ort.Tensor("int64", ids, [B, T]),
    };
    const plain = await createSession(encodeModel(klStepGraph(model, HOOK)), { ep: "wasm" });
    const adapted = await createSession(encodeModel(lora.klStepModel()), { ep: "wasm" });
    try {
      const only = (names: readonly string[], f: Record<string, ort.Tensor>) =>
        Object.fromEntries(names.map((n) => [n, f[n]]));
      const a = await plain.run(only(plain.inputNames, base));
      const b = await adapted.run(only(adapted.inputNames, { ...base, ...lora.feeds() }));
      assertEquals(b["kl_mean"].data, a["kl_mean"].data, "KL unchanged with B = 0");
      assertLess(
        relError(b["grad_kl_hook"].data as Float32Array, a["grad_kl_hook"].data as Float32Array),
        1e-6,
      );
      const gB = lora.gradsFrom(b, 1);
      assert(Object.values(gB).some((g) => g.some((v) => v !== 0)), "B gets gradient at step 0");
    } finally {
      await plain.release();
      await adapted.release();
    }
    // Float64: random B so that every factor has a gradient; check one A and one B per block.
    for (const v of Object.values(lora.params)) v.set(rng.normals(v.length, 0.05));
    const feeds: Feeds = {
      hook_clean: { dtype: DataType.FLOAT, dims: [B, T, D], data: Float64Array.from(clean) },
      hook: { dtype: DataType.FLOAT, dims: [B, T, D], data: Float64Array.from(hook) },
      kl_mask: { dtype: DataType.FLOAT, dims: [B, T], data: Float64Array.from(mask) },
      input_ids: { dtype: DataType.INT64, dims: [B, T], data: Float64Array.from(ids, Number) },
    };
    for (const [name, t] of Object.entries(lora.feeds())) {
      feeds[name] = {
        dtype: DataType.FLOAT,
        dims: t.dims as number[],
        data: Float64Array.from(t.data as Float32Array),
      };
    }
    const checked = lora.adapters.filter((a) => /qkv|fc_out/.test(a.name)).flatMap((
      a,
    ) => [a.A, a.B]);
    const fwd = lora.klStepModel();
    const grads = runReference(fwd, feeds, checked.map((n) => `grad_${n}`));
    for (const name of checked) {
      const { err, fdNorm } = finiteDifferenceError(
        fwd,
        "kl_mean",
        feeds,
        name,
        grads[`grad_${name}`].data!,
        rng,
        { samples: 6 },
      );
      assert(fdNorm > 1e-8, `${name}: finite differences are ~0`);
      assert(err <= 1e-6, `${name}: scaled error ${err}`);
    }
  },
});

Deno.test("LM LoRA before the hook is refused, with the reason for ReLU SAEs", () => {
  assertThrows(
    () => new LmLora(model, HOOK, { rank: 2, alpha: 4, layers: "all", saeKind: "relu" }),
    LmLoraError,
    "changing how many latents fire",
  );
  assertThrows(
    () =>
      new LmLora(model, "/blocks.3/Add_2_output_0", {
        rank: 2,
        alpha: 4,
        layers: "after_hook",
        saeKind: "topk",
      }),
    LmLoraError,
    "last block",
  );
});

Deno.test({
  name:
    "LM LoRA on all blocks: the adapted prefix equals the original at step 0; its gradient graph matches float64 FD",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("lm-lora-prefix");
    const lora = new LmLora(model, HOOK, { rank: 2, alpha: 4, layers: "all", saeKind: "topk" });
    assertEquals(lora.prefixNames.length, 16, "blocks 0 and 1: 4 MatMuls × (A, B)");
    assertEquals(lora.suffixNames.length, 16);
    const labels = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const ids = new ort.Tensor("int64", labels, [B, T]);
    const plain = await createSession(encodeModel(prefix(model, HOOK)), { ep: "wasm" });
    const adapted = await createSession(encodeModel(lora.prefixModel()), { ep: "wasm" });
    try {
      const a = await plain.run({ [plain.inputNames[0]]: ids });
      const feeds = { ...lora.feeds(adapted.inputNames), [adapted.inputNames[0]]: ids };
      for (const n of adapted.inputNames) if (!(n in feeds)) feeds[n] = ids;
      const b = await adapted.run(feeds);
      assertEquals(b[adapted.outputNames[0]].data, a[plain.outputNames[0]].data);
    } finally {
      await plain.release();
      await adapted.release();
    }
    for (const v of Object.values(lora.params)) v.set(rng.normals(v.length, 0.05));
    const feeds: Feeds = {
      upstream: { dtype: DataType.FLOAT, dims: [B, T, D], data: rng.normals64(B * T * D) },
    };
    const pm = lora.prefixModel();
    const idsName = pm.graph!.input!.find((i) => !(i.name! in lora.params))!.name!;
    feeds[idsName] = {
      dtype: DataType.INT64,
      dims: [B, T],
      data: Float64Array.from(labels, Number),
    };
    for (const [name, t] of Object.entries(lora.feeds(lora.prefixNames))) {
      feeds[name] = {
        dtype: DataType.FLOAT,
        dims: t.dims as number[],
        data: Float64Array.from(t.data as Float32Array),
      };
    }
    const checked = [lora.prefixNames[0], lora.prefixNames[1], lora.prefixNames.at(-1)!];
    const grads = runReference(lora.prefixGradModel(), feeds, checked.map((n) => `grad_${n}`));
    // The loss the gradient graph differentiates: ⟨prefix(ids), upstream⟩.
    for (const name of checked) {
      const { err, fdNorm } = finiteDifferenceError(
        lora.prefixDotModel(),
        "lora/dot",
        feeds,
        name,
        grads[`grad_${name}`].data!,
        rng,
        { samples: 6 },
      );
      assert(fdNorm > 1e-8, `${name}: finite differences are ~0`);
      assert(err <= 1e-6, `${name}: scaled error ${err}`);
    }
  },
});

Deno.test({
  name:
    "LM LoRA on all blocks: the loop's gradient for an adapter before the hook matches finite differences of the spliced KL",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // TopK makes the spliced KL piecewise smooth: a draw whose largest gradients all sit at a
    // selection boundary (a near tie anywhere moves them all) is drawn again, at most 4 times.
    const rng = freshRng("lm-lora-chain");
    let checked = 0;
    for (let draw = 0; draw < 4 && checked < 2; draw++) checked = await chainCheck(rng);
    assert(checked >= 2, `only ${checked} smooth elements among the largest gradients`);
  },
});

/**
 * One draw of adapters and tokens: runs a kl_only step of the loop and checks the gradient it
 * hands the prefix adapters against central differences of the spliced KL; returns how many
 * elements were smooth enough to check (each one checked must match).
 */
async function chainCheck(rng: ReturnType<typeof freshRng>): Promise<number> {
  const gpu = await testGpu();
  const Bc = 2, Tc = 16;
  const lora = new LmLora(model, HOOK, { rank: 2, alpha: 4, layers: "all", saeKind: "topk" });
  for (const v of Object.values(lora.params)) v.set(rng.normals(v.length, 0.05));
  const sae = initSae({ kind: "topk", dIn: D, dSae: 256, k: 16 }, { seed: 4 });
  const ids = BigInt64Array.from({ length: Bc * Tc }, () => BigInt(rng.int(V)));
  const trainer = new TopKGpuTrainer(gpu, sae, {
    weightDecay: 0,
    gradClip: 1e9,
    decoderConstraint: false,
    auxK: 0,
  });
  let captured: Record<string, Float32Array> = {};
  class Capture extends HostAdamW {
    override step(g: Record<string, Float32Array>, lr: number) {
      captured = g;
      return super.step(g, lr);
    }
  }
  try {
    await runFinetune({
      objective: "kl_only",
      model,
      hook: HOOK,
      ep: "wasm",
      sae: trainer,
      data: { next: () => ids, cursor: 0, seek: () => {} },
      batchSize: Bc,
      seqLen: Tc,
      steps: 1,
      schedule: { lr: 0 },
      adapter: { lm: lora, optimizer: new Capture(lora.params, { weightDecay: 0, clip: 1e9 }) },
    });
    // The same spliced KL, evaluated directly: adapted prefix → SAE → adapted suffix.
    const clean = await createSession(encodeModel(prefix(model, HOOK)), { ep: "wasm" });
    const pre = await createSession(encodeModel(lora.prefixModel()), { ep: "wasm" });
    const kl = await createSession(encodeModel(lora.klStepModel()), { ep: "wasm" });
    const lmIn = { ids, batch: Bc, seq: Tc };
    const feedsOf = (s: typeof pre, extra: Record<string, ort.Tensor>) =>
      feedsFor(s.inputNames, { ...lora.feeds(s.inputNames), ...extra }, lmIn);
    const xClean = (await clean.run(feedsOf(clean, {})))[clean.outputNames[0]];
    const spliced = async () => {
      const x = (await pre.run(feedsOf(pre, {})))[pre.outputNames[0]].data as Float32Array;
      const xhat = (await trainer.forward(x, Bc * Tc, true)).xhat;
      const out = await kl.run(feedsOf(kl, {
        hook_clean: xClean,
        hook: new ort.Tensor("float32", xhat, [Bc, Tc, D]),
        kl_mask: new ort.Tensor("float32", positionMask(Bc, Tc), [Bc, Tc]),
      }));
      return Number((out["kl_mean"].data as Float32Array)[0]);
    };
    try {
      // Prefix B elements with large gradients. TopK makes the spliced KL piecewise smooth: an
      // element whose two step sizes disagree crossed a selection boundary and is passed over.
      const fdAt = async (p: Float32Array, i: number, h: number) => {
        const keep = p[i];
        p[i] = keep + h;
        const up = await spliced();
        p[i] = keep - h;
        const down = await spliced();
        p[i] = keep;
        return (up - down) / (2 * h);
      };
      const candidates = lora.prefixNames.filter((n) => n.includes("B")).flatMap((n) =>
        [...captured[n].keys()].map((i) => ({ n, i, g: captured[n][i] }))
      ).sort((a, b) => Math.abs(b.g) - Math.abs(a.g)).slice(0, 6);
      let checked = 0;
      for (const c of candidates) {
        const f1 = await fdAt(lora.params[c.n], c.i, 2e-3),
          f2 = await fdAt(lora.params[c.n], c.i, 1e-3);
        if (Math.abs(f1 - f2) > 0.02 * Math.abs(f2)) continue;
        assertLess(Math.abs(c.g - f2) / Math.abs(f2), 0.02, `${c.n}[${c.i}]: ${c.g} vs ${f2}`);
        if (++checked === 3) break;
      }
      return checked;
    } finally {
      for (const s of [clean, pre, kl]) await s.release();
    }
  } finally {
    trainer.release();
  }
}
