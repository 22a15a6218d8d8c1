// The lm CLI end to end on tiny-neox: check says ok, splice-grad writes the fixture's tensors.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { CliError, errorLines, main } from "../../lm/cli.ts";
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

Deno.test("lm splice-grad writes the reference tensors (ep auto: the native cpu EP here)", async () => {
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

const HF = new URL("../fixtures/hf/", import.meta.url).pathname;
const hfExists = (() => {
  try {
    Deno.statSync(`${HF}gpt2-merged.onnx`);
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "lm splice-grad on an HF merged decoder with a TransformerLens hook matches PyTorch",
  ignore: !hfExists,
  fn: async () => {
    const out = await Deno.makeTempFile({ suffix: ".safetensors" });
    const ref = `${HF}gpt2.reference.safetensors`;
    try {
      const model = `${HF}gpt2-merged.onnx`;
      const args = ["splice-grad", model, "--hook", "blocks.0.hook_resid_post", "--in", ref];
      assertEquals(await main([...args, "--out", out]), 0);
      const got = (await readSafetensors(out)).tensors, want = (await readSafetensors(ref)).tensors;
      for (const n of ["logits_spliced", "kl_per_token", "grad_kl_recon", "grad_ce_recon"]) {
        const e = relError(f32(got.get(n)!), f32(want.get(n)!));
        assert(e <= 1e-4, `${n}: relative error ${e}`);
      }
    } finally {
      await Deno.remove(out);
    }
  },
});

Deno.test({
  name: "lm hooks lists the signature and TransformerLens names",
  ignore: !hfExists,
  fn: async () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      assertEquals(await main(["hooks", `${HF}neox-ext/model.onnx`]), 0);
    } finally {
      console.log = log;
    }
    assert(lines[0].startsWith("# ") && lines[0].includes("past_key_values ×4"), lines[0]);
    assert(lines.some((l) => l.endsWith("blocks.0.hook_resid_post blocks.1.hook_resid_pre")));
  },
});

Deno.test("lm: errors print as one line without a stack, exit code ≠ 0", async () => {
  const run = async (...args: string[]) => {
    const p = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../../lm/cli.ts", import.meta.url).pathname, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: p.code, err: new TextDecoder().decode(p.stderr).trim() };
  };
  const missing = await run("check", "/no/such/model.onnx", "--hook", "resid_post:0");
  assertEquals(missing.code, 2);
  assertEquals(missing.err, "error: cannot read /no/such/model.onnx: no such file");
  const hook = await run("check", MODEL, "--hook", "nope");
  assert(hook.code !== 0);
  assertEquals(hook.err.split("\n").length, 1, hook.err);
  assert(hook.err.startsWith("error: ") && hook.err.includes("/embed/Gather_output_0"), hook.err);
  assert(!hook.err.includes("    at "), hook.err);
});

Deno.test("lm: errorLines folds a multi-line message into one line and keeps usage apart", () => {
  assertEquals(errorLines(new Error("a\n  b")), "error: a b");
  assertEquals(
    errorLines(new CliError("no MODEL given\nusage:\n  x")),
    "error: no MODEL given\nusage:\n  x",
  );
  assertEquals(errorLines(new RangeError("r")), "error: RangeError: r");
});
