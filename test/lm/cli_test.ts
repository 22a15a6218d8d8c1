// The lm CLI end to end on tiny-neox: check says ok, splice-grad writes the fixture's tensors.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { CliError, main } from "../../lm/cli.ts";
import { f32, readSafetensors } from "../../lib/safetensors.ts";
import { relError } from "../util/rand.ts";

const dir = new URL("../../fixtures/tiny-neox/", import.meta.url);
const MODEL = new URL("tiny-neox.onnx", dir).pathname;
const REF = new URL("reference.safetensors", dir).pathname;
const HOOK = "/blocks.1/Add_2_output_0";

Deno.test("lm check: every op after the hook has a gradient rule", async () => {
  assertEquals(await main(["check", MODEL, "--hook", HOOK]), 0);
});

Deno.test("lm: an unknown hook is an error listing candidates", async () => {
  const e = await assertRejects(() => main(["check", MODEL, "--hook", "nope"]), CliError);
  assert(e.message.includes("/blocks.1/Add_2_output_0"), e.message);
});

Deno.test("lm splice-grad writes the reference tensors (wasm)", async () => {
  const out = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    assertEquals(await main(["splice-grad", MODEL, "--hook", HOOK, "--in", REF, "--out", out]), 0);
    const got = (await readSafetensors(out)).tensors, want = (await readSafetensors(REF)).tensors;
    const names = [
      "logits_clean",
      "logits_spliced",
      "kl_per_token",
      "ce_clean_per_token",
      "ce_spliced_per_token",
      "ce_zero_per_token",
      "grad_kl_recon",
      "grad_ce_recon",
    ];
    for (const n of names) {
      const g = got.get(n), w = want.get(n)!;
      assert(g, `output has no ${n}`);
      assertEquals(g.shape, w.shape, n);
      const e = relError(f32(g), f32(w));
      assert(e <= 1e-4, `${n}: relative error ${e}`);
    }
  } finally {
    await Deno.remove(out);
  }
});
