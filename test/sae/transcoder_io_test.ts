// Transcoder files: SAELens' layout (architecture transcoder / skip_transcoder, d_out,
// apply_b_dec_to_input false, metadata.hook_name_out, W_skip [d_out, d_in]) round-trips bit for bit
// and evaluates as the float64 reference; sparsify transcoders (transcode, skip_connection) import
// and evaluate as sparsify's own forward written out here; mismatches are named.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "node:path";
import { type StTensor, tensorOf, writeSafetensors } from "../../lib/safetensors.ts";
import { importSparsify, loadSae, SaeFormatError, saveSae } from "../../sae/io.ts";
import type { Sae, SaeKind } from "../../sae/types.ts";
import { freshRng, relError } from "../util/rand.ts";
import { forwardRef } from "./ref.ts";

function transcoder(rng: ReturnType<typeof freshRng>, kind: SaeKind, skip: boolean): Sae {
  const d = 6 + rng.int(6), n = 3 * d;
  return {
    cfg: {
      kind,
      dIn: d,
      dSae: n,
      ...(kind === "topk" ? { k: 4 } : {}),
      metadata: {
        model: "tiny-neox",
        hookName: "blocks.1.ln2.hook_normalized",
        hookNameOut: "blocks.1.hook_mlp_out",
        contextSize: 128,
      },
      transcoder: { skip },
    },
    weights: {
      W_enc: rng.normals(d * n, 0.4),
      b_enc: rng.normals(n, 0.1),
      W_dec: rng.normals(n * d, 0.3),
      b_dec: rng.normals(d, 0.3),
      ...(skip ? { W_skip: rng.normals(d * d, 0.2) } : {}),
    },
  };
}

for (const [kind, skip] of [["topk", true], ["relu", false], ["relu", true]] as const) {
  Deno.test(`SAELens transcoder layout (${kind}, skip ${skip}) round-trips`, async () => {
    const rng = freshRng(`transcoder-io-${kind}-${skip}`);
    const src = transcoder(rng, kind, skip);
    const dir = await Deno.makeTempDir();
    try {
      await saveSae(dir, src);
      const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json")));
      assertEquals(cfg.architecture, skip ? "skip_transcoder" : "transcoder");
      assertEquals(cfg.d_out, src.cfg.dIn);
      assertEquals(cfg.apply_b_dec_to_input, false);
      assertEquals(cfg.metadata.hook_name_out, "blocks.1.hook_mlp_out");
      assertEquals(cfg.splice_kind, kind === "relu" ? undefined : kind);
      const back = await loadSae(dir);
      assertEquals(back.cfg, src.cfg);
      for (const name of ["W_enc", "b_enc", "W_dec", "b_dec", "W_skip"] as const) {
        assertEquals(back.weights[name], src.weights[name], name);
      }
      const x = rng.normals(5 * src.cfg.dIn);
      assert(relError(forwardRef(back, x).xHat, forwardRef(src, x).xHat) < 1e-7);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("SAELens transcoder with d_out ≠ d_in is refused, naming both", async () => {
  const rng = freshRng("transcoder-io-dout");
  const src = transcoder(rng, "relu", false);
  const dir = await Deno.makeTempDir();
  try {
    await saveSae(dir, src);
    const path = join(dir, "cfg.json");
    const cfg = JSON.parse(await Deno.readTextFile(path));
    await Deno.writeTextFile(path, JSON.stringify({ ...cfg, d_out: src.cfg.dIn + 1 }));
    await assertRejects(() => loadSae(dir), SaeFormatError, `d_out ${src.cfg.dIn + 1}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sparsify skip transcoder imports and evaluates like sparsify's forward", async () => {
  const rng = freshRng("transcoder-sparsify");
  const d = 8 + rng.int(6), n = 2 * d, k = 3, N = 7;
  const enc = rng.normals(n * d, 0.4), bias = rng.normals(n, 0.1);
  const Wdec = rng.normals(n * d, 0.3), bdec = rng.normals(d, 0.3), Wskip = rng.normals(d * d);
  const t = (a: Float32Array, shape: number[]): StTensor => tensorOf(a, shape);
  const dir = await Deno.makeTempDir();
  try {
    const tensors = new Map<string, StTensor>([
      ["encoder.weight", t(enc, [n, d])],
      ["encoder.bias", t(bias, [n])],
      ["W_dec", t(Wdec, [n, d])],
      ["b_dec", t(bdec, [d])],
      ["W_skip", t(Wskip, [d, d])],
    ]);
    await writeSafetensors(join(dir, "sae.safetensors"), tensors);
    const cfg = {
      activation: "topk",
      expansion_factor: 2,
      num_latents: n,
      k,
      skip_connection: true,
      transcode: true,
      d_in: d,
    };
    await Deno.writeTextFile(join(dir, "cfg.json"), JSON.stringify(cfg));
    const sae = await importSparsify(dir);
    assertEquals(sae.cfg, { kind: "topk", dIn: d, dSae: n, k, transcoder: { skip: true } });
    // sparsify, transcode: encode(x) without b_dec, top-k of relu, decode + b_dec, + x @ W_skip.mT.
    const x = rng.normals(N * d);
    const want = new Float64Array(N * d);
    for (let r = 0; r < N; r++) {
      const pre = Array.from({ length: n }, (_, j) => {
        let v = bias[j];
        for (let i = 0; i < d; i++) v += x[r * d + i] * enc[j * d + i];
        return v;
      });
      const top = [...pre.keys()].sort((a, b) => pre[b] - pre[a]).slice(0, k);
      for (let o = 0; o < d; o++) {
        let v = bdec[o];
        for (const j of top) v += Math.max(pre[j], 0) * Wdec[j * d + o];
        for (let i = 0; i < d; i++) v += x[r * d + i] * Wskip[o * d + i];
        want[r * d + o] = v;
      }
    }
    const e = relError(forwardRef(sae, x).xHat, want);
    assert(e < 1e-6, `ŷ rel ${e}`);
    // W_skip without transcode is refused.
    await Deno.writeTextFile(
      join(dir, "cfg.json"),
      JSON.stringify({ ...cfg, transcode: false }),
    );
    await assertRejects(() => importSparsify(dir), SaeFormatError, "W_skip");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
