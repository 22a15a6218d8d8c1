// Hugging-Face-shaped exports through the routes: POST /models reports the recognised signature
// and the hook points with their TransformerLens names; POST /evals and /finetunes refuse an
// unknown model, a hook that does not resolve (with the model's hooks) and an SAE whose d_in is
// not the hook's width at request time, and accept an SAE registered under a TransformerLens
// hook_name.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { saes } from "../../db/schema.ts";
import { startTestService } from "../util/service.ts";

const DIR = new URL("../fixtures/hf/", import.meta.url).pathname;

const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

Deno.test({
  name: "routes: HF exports register with their signature; hook and d_in checked at request time",
  ignore: !exists(`${DIR}neox-ext/model.onnx`) || !exists(`${DIR}gpt2-merged.onnx`),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // No workers: a request that passes every check is then a 503 (no worker), not a 400.
    const svc = await startTestService({ jobs: [], config: { roots: [DIR] } });
    const { post } = svc;
    try {
      const ids: Record<string, string> = {};
      for (const [name, file] of [["neox", "neox-ext/model.onnx"], ["gpt2", "gpt2-merged.onnx"]]) {
        const res = await post("/models", { name, path: `${DIR}${file}`, context_length: 64 });
        const body = await res.json();
        assertEquals(res.status, 201, JSON.stringify(body));
        ids[name] = body.id;
        assert(body.signature.recognised.includes("past_key_values ×4 (empty past)"));
        const tl = body.hooks.flatMap((h: { tl_names: string[] }) => h.tl_names);
        assert(tl.includes("blocks.1.hook_resid_post"), JSON.stringify(body.hooks));
        assertEquals(tl.includes("blocks.0.hook_resid_mid"), name === "gpt2");
      }
      const gpt2 = (await (await fetch(`${svc.url}/models/${ids.gpt2}`)).json()).info;
      assert(gpt2.signature.some((s: string) => s.startsWith("merged decoder")));

      const sae = async (id: string, dIn: number, hook: string) => {
        await svc.database.db.insert(saes).values({
          id,
          name: id,
          path: "/nonexistent",
          architecture: "topk",
          dIn,
          dSae: 128,
          hook,
        });
      };
      await sae("tl-post", 64, "blocks.0.hook_resid_post");
      await sae("tl-mid", 64, "blocks.0.hook_resid_mid");
      await sae("narrow", 32, "blocks.1.hook_resid_post");

      const unknown = await post("/evals", { model: "no-such-model", sae: "tl-post" });
      assertEquals(unknown.status, 400);
      assertStringIncludes((await unknown.json()).error.message, '"no-such-model"');

      const mid = await post("/evals", { model: ids.neox, sae: "tl-mid", seq_len: 16 });
      const midErr = (await mid.json()).error;
      assertEquals([mid.status, midErr.code], [400, "unknown_hook"]);
      assertStringIncludes(midErr.message, "parallel");

      const bad = await post("/evals", {
        model: ids.neox,
        sae: "tl-post",
        hook: "nope",
        seq_len: 16,
      });
      const badErr = (await bad.json()).error;
      assertEquals(bad.status, 400);
      assertStringIncludes(badErr.message, "blocks.0.hook_resid_pre");

      const narrow = await post("/finetunes", {
        model: ids.gpt2,
        sae: "narrow",
        kind: "kl_mse",
        seq_len: 16,
      });
      const narrowErr = (await narrow.json()).error;
      assertEquals([narrow.status, narrowErr.code], [400, "sae_model_mismatch"]);
      assertStringIncludes(narrowErr.message, "64 wide");

      // A SAELens TransformerLens hook_name resolves on both models: only the missing worker stops it.
      for (const model of [ids.neox, ids.gpt2]) {
        const ok = await post("/evals", { model, sae: "tl-post", seq_len: 16 });
        assertEquals(ok.status, 503, JSON.stringify(await ok.json()));
        const ft = await post("/finetunes", { model, sae: "tl-post", kind: "kl_mse", seq_len: 16 });
        assertEquals(ft.status, 503, JSON.stringify(await ft.json()));
      }
    } finally {
      await svc.close();
    }
  },
});
