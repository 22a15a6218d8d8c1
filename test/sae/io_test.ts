import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import {
  f32,
  readSafetensors,
  type StTensor,
  tensorOf,
  writeSafetensors,
} from "../../lib/safetensors.ts";
import {
  importDictionaryLearning,
  importSparsify,
  loadSae,
  SaeFormatError,
  saveSae,
} from "../../sae/io.ts";
import type { Sae } from "../../sae/types.ts";
import { freshRng, relError } from "../util/rand.ts";
import { forwardRef, randomSae } from "./ref.ts";

const FIXTURES = new URL("../fixtures/sae/", import.meta.url).pathname;

function bitsEqual(a: Float32Array | undefined, b: Float32Array | undefined, name: string) {
  assert(a && b, `${name} missing`);
  assertEquals(
    new Uint32Array(a.buffer, a.byteOffset, a.length),
    new Uint32Array(b.buffer, b.byteOffset, b.length),
    name,
  );
}

function transposeOf(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

for (const kind of ["relu", "topk", "jumprelu", "batchtopk"] as const) {
  Deno.test(`saveSae → loadSae is bit-exact (${kind})`, async () => {
    const rng = freshRng(`io-${kind}`);
    const d = 10 + rng.int(10), n = 20 + rng.int(20);
    const sae = randomSae(rng, {
      kind,
      dIn: d,
      dSae: n,
      k: kind === "topk" || kind === "batchtopk" ? 3 + rng.int(4) : undefined,
      l1Coefficient: kind === "relu" ? 5 : undefined,
      metadata: {
        model: "tiny-neox",
        hookName: "/gpt_neox/layers.1/Add_1_output_0",
        contextSize: 128,
      },
    });
    if (sae.cfg.k === undefined) delete sae.cfg.k;
    if (sae.cfg.l1Coefficient === undefined) delete sae.cfg.l1Coefficient;
    const dir = await Deno.makeTempDir();
    await saveSae(dir, sae);
    const back = await loadSae(dir);
    assertEquals(back.cfg, sae.cfg);
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"] as const) {
      if (sae.weights[name]) bitsEqual(back.weights[name], sae.weights[name], name);
      else assertEquals(back.weights[name], undefined);
    }
    const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json")));
    assertEquals(
      cfg.architecture,
      { relu: "standard", topk: "topk", jumprelu: "jumprelu", batchtopk: "jumprelu" }[kind],
    );
    assertEquals(cfg.apply_b_dec_to_input, true);
    assertEquals(cfg.normalize_activations, "none");
    assertEquals(cfg.metadata.hook_name, "/gpt_neox/layers.1/Add_1_output_0");
    if (kind === "topk") assertEquals(cfg.activation_fn_kwargs, { k: sae.cfg.k });
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("saveSae with a scaling factor folds it: the saved SAE on raw x = scaled SAE on s·x / s", async () => {
  const rng = freshRng("io-fold");
  const d = 12, n = 30, s = 0.3 + rng.uniform();
  const sae = randomSae(rng, { kind: "topk", dIn: d, dSae: n, k: 4 });
  const dir = await Deno.makeTempDir();
  await saveSae(dir, sae, { scalingFactor: s });
  const back = await loadSae(dir);
  const x = rng.normals(5 * d, 3);
  const want = forwardRef(sae, x.map((v) => v * s)).xHat.map((v) => v / s);
  assert(relError(forwardRef(back, x).xHat, want) < 1e-5);
  await Deno.remove(dir, { recursive: true });
});

for (const name of ["saelens_topk_v6", "saelens_jumprelu_pre6"]) {
  Deno.test(`a file written in SAELens' layout loads and evaluates as SAELens' forward did (${name})`, async () => {
    const dir = join(FIXTURES, name);
    const sae = await loadSae(dir);
    const ref = await readSafetensors(join(dir, "reference.safetensors"));
    const x = f32(ref.tensors.get("x")!);
    const { xHat, h } = forwardRef(sae, x);
    const ex = relError(xHat, f32(ref.tensors.get("x_hat")!));
    const eh = relError(h, f32(ref.tensors.get("acts")!));
    assert(ex < 1e-5 && eh < 1e-5, `x̂ rel ${ex}, acts rel ${eh}`);
    assert(h.some((v) => v !== 0));
    const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json")));
    assertEquals(sae.cfg.dIn, cfg.d_in);
    assertEquals(sae.cfg.metadata?.model, "tiny-neox");
    if (name.includes("topk")) {
      assertEquals(sae.cfg.kind, "topk");
      assertEquals(sae.cfg.k, 5);
      assertEquals(sae.cfg.metadata?.hookName, "blocks.1.hook_resid_post");
      assertEquals(sae.cfg.metadata?.contextSize, 128);
    } else {
      assertEquals(sae.cfg.kind, "jumprelu");
      assertEquals(sae.cfg.metadata?.hookName, "blocks.0.hook_resid_post");
    }
  });
}

async function expectFormatError(fn: () => Promise<unknown>, ...parts: string[]) {
  const e = await assertRejects(fn, SaeFormatError);
  for (const p of parts) assertStringIncludes(e.message, p);
}

Deno.test("SAELens files with a wrong shape or missing key fail naming the tensor and both shapes", async () => {
  const rng = freshRng("io-mismatch");
  const sae = randomSae(rng, { kind: "relu", dIn: 8, dSae: 16 });
  const dir = await Deno.makeTempDir();
  await saveSae(dir, sae);
  const path = join(dir, "sae_weights.safetensors");
  const file = await readSafetensors(path);
  const good = new Map(file.tensors);
  file.tensors.set("W_dec", tensorOf(sae.weights.W_dec, [8, 16]));
  await writeSafetensors(path, file.tensors);
  await expectFormatError(() => loadSae(dir), `"W_dec"`, "[16,8]", "[8,16]");
  const missing = new Map(good);
  missing.delete("b_enc");
  await writeSafetensors(path, missing);
  await expectFormatError(() => loadSae(dir), `missing tensor "b_enc"`, "[16]");
  const extra = new Map(good);
  extra.set("W_gate", tensorOf(new Float32Array(3), [3]));
  await writeSafetensors(path, extra);
  await expectFormatError(() => loadSae(dir), `"W_gate"`);
  await writeSafetensors(path, good);
  const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json")));
  await Deno.writeTextFile(
    join(dir, "cfg.json"),
    JSON.stringify({ ...cfg, architecture: "gated" }),
  );
  // A gated SAE's gate bias is b_gate, not b_enc (test/sae/gated_io_test.ts loads real ones).
  await expectFormatError(() => loadSae(dir), `missing tensor "b_gate"`);
  await Deno.writeTextFile(
    join(dir, "cfg.json"),
    JSON.stringify({ ...cfg, architecture: "hybrid_moe" }),
  );
  await expectFormatError(
    () => loadSae(dir),
    `"hybrid_moe"`,
    "not supported",
    "gated, matryoshka_batchtopk, transcoder, skip_transcoder",
  );
  await Deno.writeTextFile(
    join(dir, "cfg.json"),
    JSON.stringify({ ...cfg, normalize_activations: "layer_norm" }),
  );
  await expectFormatError(() => loadSae(dir), "layer_norm");
  await Deno.writeTextFile(
    join(dir, "cfg.json"),
    JSON.stringify({ ...cfg, normalize_activations: "expected_average_only_in" }),
  );
  await expectFormatError(() => loadSae(dir), "activation_scaler.json");
  // With the scaler file the factor is folded in on load.
  await Deno.writeTextFile(
    join(dir, "activation_scaler.json"),
    JSON.stringify({ scaling_factor: 2 }),
  );
  const folded = await loadSae(dir);
  assertEquals(folded.weights.W_enc[0], sae.weights.W_enc[0] * 2);
  await Deno.remove(dir, { recursive: true });
});

function t(a: Float32Array, shape: number[]): StTensor {
  return tensorOf(a, shape);
}

for (const dictClass of ["AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE", "JumpReluAutoEncoder"]) {
  Deno.test(`dictionary_learning ${dictClass} imports and evaluates like its own forward`, async () => {
    const rng = freshRng(`dl-${dictClass}`);
    const d = 9 + rng.int(8), n = 20 + rng.int(10), k = 3;
    const kind = ({
      AutoEncoder: "relu",
      AutoEncoderTopK: "topk",
      BatchTopKSAE: "batchtopk",
      JumpReluAutoEncoder: "jumprelu",
    } as const)[dictClass]!;
    const src = randomSae(rng, {
      kind,
      dIn: d,
      dSae: n,
      k: kind === "relu" || kind === "jumprelu" ? undefined : k,
    });
    const w = src.weights;
    const tensors = new Map<string, StTensor>();
    if (kind === "jumprelu") {
      // Its encoder reads x (apply_b_dec_to_input False): the importer folds b_dec into b_enc.
      for (
        const [name, a, s] of [
          ["W_enc", w.W_enc, [d, n]],
          ["b_enc", w.b_enc, [n]],
          ["W_dec", w.W_dec, [n, d]],
          ["b_dec", w.b_dec, [d]],
          ["threshold", w.threshold!, [n]],
        ] as const
      ) {
        tensors.set(name, t(a, [...s]));
      }
    } else {
      tensors.set("encoder.weight", t(transposeOf(w.W_enc, d, n), [n, d]));
      tensors.set("encoder.bias", t(w.b_enc, [n]));
      tensors.set("decoder.weight", t(transposeOf(w.W_dec, n, d), [d, n]));
      if (kind === "relu") tensors.set("bias", t(w.b_dec, [d]));
      else {
        tensors.set("b_dec", t(w.b_dec, [d]));
        tensors.set("k", tensorOf(new BigInt64Array([BigInt(k)]), []));
        tensors.set(
          "threshold",
          t(new Float32Array([kind === "batchtopk" ? w.threshold![0] : -1]), []),
        );
      }
    }
    const dir = await Deno.makeTempDir();
    const path = join(dir, "ae.safetensors");
    await writeSafetensors(path, tensors);
    await Deno.writeTextFile(
      join(dir, "config.json"),
      JSON.stringify({
        trainer: {
          dict_class: dictClass,
          lm_name: "EleutherAI/pythia-70m-deduped",
          submodule_name: "resid_post_layer_3",
        },
        buffer: { ctx_len: 128 },
      }),
    );
    const sae = await importDictionaryLearning(path);
    assertEquals(sae.cfg.kind, kind);
    if (kind === "topk" || kind === "batchtopk") assertEquals(sae.cfg.k, k);
    assertEquals(sae.cfg.metadata?.contextSize, 128);
    bitsEqual(sae.weights.W_dec, w.W_dec, "W_dec");
    const x = rng.normals(7 * d, 2);
    // dictionary_learning's own forward, in float64: JumpRelu reads x, the others x − b_dec.
    let want: Float64Array;
    if (kind === "jumprelu") {
      const noBdec: Sae = { cfg: src.cfg, weights: { ...w, b_dec: new Float32Array(d) } };
      const { h } = forwardRef(noBdec, x);
      want = new Float64Array(7 * d);
      for (let q = 0; q < 7; q++) {
        for (let j = 0; j < d; j++) {
          let s = w.b_dec[j];
          for (let i = 0; i < n; i++) s += h[q * n + i] * w.W_dec[i * d + j];
          want[q * d + j] = s;
        }
      }
    } else want = forwardRef(src, x).xHat;
    const e = relError(forwardRef(sae, x).xHat, want);
    assert(e < 1e-5, `x̂ rel ${e}`);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("dictionary_learning import errors: ambiguous TopK, wrong shapes, unset BatchTopK threshold", async () => {
  const rng = freshRng("dl-errors");
  const d = 6, n = 10;
  const base = new Map<string, StTensor>([
    ["encoder.weight", t(rng.normals(n * d), [n, d])],
    ["encoder.bias", t(rng.normals(n), [n])],
    ["decoder.weight", t(rng.normals(d * n), [d, n])],
    ["b_dec", t(rng.normals(d), [d])],
    ["k", tensorOf(new BigInt64Array([2n]), [])],
    ["threshold", t(new Float32Array([-1]), [])],
  ]);
  const dir = await Deno.makeTempDir();
  const path = join(dir, "ae.safetensors");
  await writeSafetensors(path, base);
  await expectFormatError(() => importDictionaryLearning(path), "kind");
  await expectFormatError(
    () => importDictionaryLearning(path, { kind: "batchtopk" }),
    `"threshold"`,
    "-1",
  );
  assertEquals((await importDictionaryLearning(path, { kind: "topk" })).cfg.k, 2);
  const bad = new Map(base);
  bad.set("decoder.weight", t(rng.normals(d * n), [n, d]));
  await writeSafetensors(path, bad);
  await expectFormatError(
    () => importDictionaryLearning(path, { kind: "topk" }),
    `"decoder.weight"`,
    `[${d},${n}]`,
    `[${n},${d}]`,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sparsify SparseCoder imports and evaluates like its own forward; mismatches are named", async () => {
  const rng = freshRng("sparsify");
  const d = 8 + rng.int(8), n = 2 * d, k = 4;
  const src = randomSae(rng, { kind: "topk", dIn: d, dSae: n, k });
  const dir = await Deno.makeTempDir();
  const tensors = new Map<string, StTensor>([
    ["encoder.weight", t(transposeOf(src.weights.W_enc, d, n), [n, d])],
    ["encoder.bias", t(src.weights.b_enc, [n])],
    ["W_dec", t(src.weights.W_dec, [n, d])],
    ["b_dec", t(src.weights.b_dec, [d])],
  ]);
  await writeSafetensors(join(dir, "sae.safetensors"), tensors);
  const cfg = {
    activation: "topk",
    expansion_factor: n / d,
    normalize_decoder: true,
    num_latents: 0,
    k,
    multi_topk: false,
    skip_connection: false,
    transcode: false,
    d_in: d,
  };
  await Deno.writeTextFile(join(dir, "cfg.json"), JSON.stringify(cfg));
  const sae = await importSparsify(dir);
  assertEquals(sae.cfg, { kind: "topk", dIn: d, dSae: n, k });
  const x = rng.normals(6 * d, 2);
  const e = relError(forwardRef(sae, x).xHat, forwardRef(src, x).xHat);
  assert(e < 1e-6, `x̂ rel ${e}`);
  tensors.set("W_dec", t(src.weights.W_dec, [d, n]));
  await writeSafetensors(join(dir, "sae.safetensors"), tensors);
  await expectFormatError(() => importSparsify(dir), `"W_dec"`, `[${n},${d}]`, `[${d},${n}]`);
  await Deno.writeTextFile(
    join(dir, "cfg.json"),
    JSON.stringify({ ...cfg, activation: "groupmax" }),
  );
  await expectFormatError(() => importSparsify(dir), "groupmax");
  await Deno.remove(dir, { recursive: true });
});
