// Gated SAEs in SAELens' layout (architecture "gated": W_enc, b_gate, r_mag, b_mag, W_dec, b_dec)
// and dictionary_learning's GatedAutoEncoder (encoder.weight, gate_bias, r_mag, mag_bias,
// decoder.weight, decoder_bias): round trip, hand-built files in each layout checked through the
// float64 forward, apply_b_dec_to_input=false folded, wrong shapes refused naming the tensor.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { tensorOf, writeSafetensors } from "../../lib/safetensors.ts";
import { importDictionaryLearning, loadSae, SaeFormatError, saveSae } from "../../sae/io.ts";
import { foldScaling } from "../../sae/scaling.ts";
import { freshRng, relError } from "../util/rand.ts";
import { gatedForwardRef, randomGatedSae } from "./gated_ref.ts";

const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec", "r_mag", "b_mag"] as const;

function transposeOf(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

async function expectFormatError(fn: () => Promise<unknown>, ...parts: string[]) {
  const e = await assertRejects(fn, SaeFormatError);
  for (const p of parts) assertStringIncludes(e.message, p);
}

Deno.test("gated: saveSae → loadSae is bit-exact, in SAELens' names", async () => {
  const rng = freshRng("gated-io");
  const d = 5 + rng.int(10), n = 10 + rng.int(20);
  const sae = randomGatedSae(rng, d, n);
  sae.cfg.l1Coefficient = 0.25;
  sae.cfg.metadata = { model: "tiny-neox", hookName: "/blocks.1/Add_2_output_0", contextSize: 64 };
  const dir = await Deno.makeTempDir();
  try {
    await saveSae(dir, sae);
    const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json")));
    assertEquals(cfg.architecture, "gated");
    const { readSafetensors } = await import("../../lib/safetensors.ts");
    const file = await readSafetensors(join(dir, "sae_weights.safetensors"));
    assertEquals(
      [...file.tensors.keys()].sort(),
      ["W_dec", "W_enc", "b_dec", "b_gate", "b_mag", "r_mag"],
    );
    const back = await loadSae(dir);
    assertEquals(back.cfg, sae.cfg);
    for (const name of NAMES) {
      assertEquals(Array.from(back.weights[name]!), Array.from(sae.weights[name]!), name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gated: a hand-built SAELens file (apply_b_dec_to_input false) loads to the same function", async () => {
  const rng = freshRng("gated-saelens");
  const d = 4 + rng.int(6), n = 6 + rng.int(10), N = 7;
  const W_enc = rng.normals(d * n, 0.5), b_gate = rng.normals(n, 0.2);
  const r_mag = rng.normals(n, 0.3), b_mag = rng.normals(n, 0.2);
  const W_dec = rng.normals(n * d, 0.5), b_dec = rng.normals(d, 0.5);
  const x = rng.normals(N * d);
  // SAELens' GatedSAE.encode with apply_b_dec_to_input false reads x itself.
  const want = new Float64Array(N * d);
  for (let t = 0; t < N; t++) {
    const f = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let u = 0;
      for (let i = 0; i < d; i++) u += x[t * d + i] * W_enc[i * n + j];
      f[j] = u + b_gate[j] > 0 ? Math.max(0, Math.exp(r_mag[j]) * u + b_mag[j]) : 0;
    }
    for (let i = 0; i < d; i++) {
      let v = b_dec[i];
      for (let j = 0; j < n; j++) v += f[j] * W_dec[j * d + i];
      want[t * d + i] = v;
    }
  }
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      join(dir, "cfg.json"),
      JSON.stringify({ architecture: "gated", d_in: d, d_sae: n, apply_b_dec_to_input: false }),
    );
    const tensors = new Map([
      ["W_enc", tensorOf(W_enc, [d, n])],
      ["b_gate", tensorOf(b_gate, [n])],
      ["r_mag", tensorOf(r_mag, [n])],
      ["b_mag", tensorOf(b_mag, [n])],
      ["W_dec", tensorOf(W_dec, [n, d])],
      ["b_dec", tensorOf(b_dec, [d])],
    ]);
    const path = join(dir, "sae_weights.safetensors");
    await writeSafetensors(path, tensors);
    const sae = await loadSae(dir);
    assertEquals(sae.cfg.kind, "gated");
    const got = gatedForwardRef(sae.cfg, sae.weights as never, x).xHat;
    assert(relError(got, want) < 1e-5, `x̂ off by ${relError(got, want)}`);
    // The saved copy of a scaled SAE reads raw activations: folding keeps r_mag and b_mag.
    const s = 0.5 + rng.uniform(), folded = foldScaling(sae, s);
    const scaled = gatedForwardRef(sae.cfg, sae.weights as never, x.map((v) => v * s)).xHat;
    const raw = gatedForwardRef(folded.cfg, folded.weights as never, x).xHat;
    assert(relError(raw, scaled.map((v) => v / s)) < 1e-5, "folded scaling");
    // Wrong shapes and missing tensors are refused by name.
    await writeSafetensors(path, new Map([...tensors, ["r_mag", tensorOf(r_mag, [1, n])]]));
    await expectFormatError(() => loadSae(dir), `"r_mag"`, `[${n}]`, `[1,${n}]`);
    const noMag = new Map(tensors);
    noMag.delete("b_mag");
    await writeSafetensors(path, noMag);
    await expectFormatError(() => loadSae(dir), `missing tensor "b_mag"`);
    await writeSafetensors(path, new Map([...tensors, ["b_enc", tensorOf(b_gate, [n])]]));
    await expectFormatError(() => loadSae(dir), `unexpected tensor(s) "b_enc"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gated: dictionary_learning's GatedAutoEncoder imports (names, transposes, shapes)", async () => {
  const rng = freshRng("gated-dl");
  const d = 4 + rng.int(6), n = 6 + rng.int(10), N = 5;
  const ref = randomGatedSae(rng, d, n), w = ref.weights;
  const tensors = new Map([
    ["encoder.weight", tensorOf(transposeOf(w.W_enc, d, n), [n, d])],
    ["gate_bias", tensorOf(w.b_enc, [n])],
    ["r_mag", tensorOf(w.r_mag!, [n])],
    ["mag_bias", tensorOf(w.b_mag!, [n])],
    ["decoder.weight", tensorOf(transposeOf(w.W_dec, n, d), [d, n])],
    ["decoder_bias", tensorOf(w.b_dec, [d])],
  ]);
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "ae.safetensors");
    await writeSafetensors(path, tensors);
    const sae = await importDictionaryLearning(path);
    assertEquals(sae.cfg, { kind: "gated", dIn: d, dSae: n });
    for (const name of NAMES) {
      assertEquals(Array.from(sae.weights[name]!), Array.from(w[name]!), name);
    }
    const x = rng.normals(N * d);
    const a = gatedForwardRef(sae.cfg, sae.weights as never, x).xHat;
    const b = gatedForwardRef(ref.cfg, w as never, x).xHat;
    assertEquals(Array.from(a), Array.from(b));
    await writeSafetensors(
      path,
      new Map([...tensors, ["decoder.weight", tensorOf(w.W_dec, [n, d])]]),
    );
    await expectFormatError(
      () => importDictionaryLearning(path),
      `"decoder.weight"`,
      `[${d},${n}]`,
      `[${n},${d}]`,
    );
    const noBias = new Map(tensors);
    noBias.delete("mag_bias");
    await writeSafetensors(path, noBias);
    await expectFormatError(() => importDictionaryLearning(path), `missing tensor "mag_bias"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
