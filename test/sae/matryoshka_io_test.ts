// Matryoshka BatchTopK in SAELens' layout: saved for inference as JumpReLU with the global
// threshold on every latent, the kind and prefix widths kept in cfg.json (SAELens' field name), so
// a round trip restores them bit-exactly; SAELens' training layout (architecture
// "matryoshka_batchtopk", the scalar topk_threshold) loads and reconstructs as SAELens' inference
// would; malformed widths and thresholds are named errors.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "node:path";
import { readSafetensors, tensorOf, writeSafetensors } from "../../lib/safetensors.ts";
import { loadSae, SaeFormatError, saveSae } from "../../sae/io.ts";
import type { Sae } from "../../sae/types.ts";
import { freshRng, relError, type Rng } from "../util/rand.ts";
import { forwardRef, randomSae } from "./ref.ts";

function randomMatryoshka(rng: Rng): Sae {
  const d = 8 + rng.int(8), m = 24 + rng.int(24), k = 2 + rng.int(5);
  const sae = randomSae(rng, { kind: "batchtopk", dIn: d, dSae: m, k });
  const widths = [Math.floor(m / 4), Math.floor(m / 2), m];
  sae.cfg = {
    kind: "matryoshka_batchtopk",
    dIn: d,
    dSae: m,
    k,
    matryoshkaWidths: widths,
    metadata: {
      model: "tiny-neox",
      hookName: "/gpt_neox/layers.1/Add_1_output_0",
      contextSize: 64,
    },
  };
  return sae;
}

/** The SAE's reconstruction at inference: every latent against the one threshold. */
function inference(sae: Sae, x: Float32Array): Float64Array {
  return forwardRef({ cfg: { ...sae.cfg, kind: "batchtopk" }, weights: sae.weights }, x).xHat;
}

Deno.test("matryoshka_batchtopk: saveSae → loadSae restores kind, widths and weights bit-exactly", async () => {
  const rng = freshRng("matryoshka-io");
  const sae = randomMatryoshka(rng);
  const dir = await Deno.makeTempDir();
  try {
    await saveSae(dir, sae);
    const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json")));
    assertEquals(cfg.architecture, "jumprelu");
    assertEquals(cfg.matryoshka_widths, sae.cfg.matryoshkaWidths);
    assertEquals(cfg.k, sae.cfg.k);
    const file = await readSafetensors(join(dir, "sae_weights.safetensors"));
    const th = file.tensors.get("threshold")!;
    assertEquals(th.shape, [sae.cfg.dSae]);
    const back = await loadSae(dir);
    assertEquals(back.cfg, sae.cfg);
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"] as const) {
      const a = back.weights[name]!, b = sae.weights[name]!;
      assertEquals(new Uint32Array(a.buffer), new Uint32Array(b.slice().buffer), name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A SAELens training checkpoint of a MatryoshkaBatchTopKTrainingSAE (topk_threshold in f64). */
async function writeTrainingLayout(dir: string, sae: Sae, cfgPatch: Record<string, unknown> = {}) {
  const { dIn: d, dSae: m, k, matryoshkaWidths } = sae.cfg, w = sae.weights;
  await writeSafetensors(
    join(dir, "sae_weights.safetensors"),
    new Map([
      ["W_enc", tensorOf(w.W_enc, [d, m])],
      ["b_enc", tensorOf(w.b_enc, [m])],
      ["W_dec", tensorOf(w.W_dec, [m, d])],
      ["b_dec", tensorOf(w.b_dec, [d])],
      ["topk_threshold", tensorOf(Float64Array.of(w.threshold![0]), [])],
    ]),
  );
  await Deno.writeTextFile(
    join(dir, "cfg.json"),
    JSON.stringify({
      architecture: "matryoshka_batchtopk",
      d_in: d,
      d_sae: m,
      k,
      matryoshka_widths: matryoshkaWidths,
      use_matryoshka_aux_loss: false,
      rescale_acts_by_decoder_norm: false,
      apply_b_dec_to_input: true,
      normalize_activations: "none",
      metadata: { hook_name: "blocks.1.hook_resid_post", model_name: "tiny-neox" },
      ...cfgPatch,
    }),
  );
}

Deno.test("matryoshka_batchtopk: SAELens' training layout loads and reconstructs at its threshold", async () => {
  const rng = freshRng("matryoshka-io-training");
  const sae = randomMatryoshka(rng);
  const dir = await Deno.makeTempDir();
  try {
    await writeTrainingLayout(dir, sae);
    const back = await loadSae(dir);
    assertEquals(back.cfg.kind, "matryoshka_batchtopk");
    assertEquals(back.cfg.matryoshkaWidths, sae.cfg.matryoshkaWidths);
    assertEquals(back.cfg.k, sae.cfg.k);
    assertEquals(back.weights.threshold!.length, 1);
    const x = rng.normals(7 * sae.cfg.dIn);
    const want = inference(sae, x);
    assert(relError(inference(back, x), want) < 1e-6);
    assert(want.some((v, e) => v !== sae.weights.b_dec[e % sae.cfg.dIn]), "some latent fires");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("matryoshka_batchtopk: missing or bad widths and a varying threshold are refused", async () => {
  const rng = freshRng("matryoshka-io-errors");
  const sae = randomMatryoshka(rng);
  const m = sae.cfg.dSae;
  const cases: [Record<string, unknown>, string][] = [
    [{ matryoshka_widths: undefined }, "needs matryoshka_widths"],
    [{ matryoshka_widths: [4, 4, m] }, "strictly increasing"],
    [{ matryoshka_widths: [4, m - 1] }, `the last prefix width must be d_sae = ${m}`],
  ];
  for (const [patch, msg] of cases) {
    const dir = await Deno.makeTempDir();
    try {
      await writeTrainingLayout(dir, sae, patch);
      await assertRejects(() => loadSae(dir), SaeFormatError, msg);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  // An inference save whose thresholds differ is not one global threshold.
  const dir = await Deno.makeTempDir();
  try {
    await saveSae(dir, sae);
    const path = join(dir, "sae_weights.safetensors");
    const file = await readSafetensors(path);
    const th = new Float32Array(m).fill(0.1);
    th[m - 1] = 0.2;
    file.tensors.set("threshold", tensorOf(th, [m]));
    await writeSafetensors(path, file.tensors);
    await assertRejects(() => loadSae(dir), SaeFormatError, "needs one threshold on every latent");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await assertRejects(
    () =>
      saveSae("/nonexistent-never", { ...sae, cfg: { ...sae.cfg, matryoshkaWidths: undefined } }),
    SaeFormatError,
    "needs matryoshka_widths",
  );
});
