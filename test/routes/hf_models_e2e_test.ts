// Hugging-Face-shaped exports through the service to the end: POST /models, a SAELens-layout SAE
// whose hook_name is a TransformerLens name (POST /saes), then POST /finetunes (kl_mse) and
// POST /evals run to completion on it, for a merged decoder, an external-data Pythia-style model,
// a Llama (GQA) with past inputs, its fp16-initializer variant and a fully float16 GPT-2.
import { assert, assertEquals } from "@std/assert";
import { initSae } from "../../sae/init.ts";
import { saveSae } from "../../sae/io.ts";
import { referenceTrainerFactory } from "../util/reference_trainer.ts";
import { startTestService } from "../util/service.ts";
import { readSse } from "../util/sse.ts";

const DIR = new URL("../fixtures/hf/", import.meta.url).pathname;
const MODELS = [
  "gpt2-merged.onnx",
  "neox-ext/model.onnx",
  "llama-with-past.onnx",
  "llama-with-past-fp16w.onnx",
  "gpt2-with-past-fp16.onnx",
];

const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

Deno.test({
  name: "routes: finetune (kl_mse) and eval run to completion on HF exports with a TL-named SAE",
  ignore: MODELS.some((m) => !exists(`${DIR}${m}`)),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({
      jobs: ["finetune", "eval"],
      createTrainer: referenceTrainerFactory,
      config: { roots: [DIR] },
    });
    const { post } = svc;
    const finish = async (links: { events: string }) => {
      const events = await readSse(await fetch(`${svc.url}${links.events}`));
      const errors = events.filter((e) => e.event === "error");
      assertEquals(events.at(-1)!.data, { state: "succeeded" }, JSON.stringify(errors));
      return events.find((e) => e.event === "result")!.data as Record<string, unknown>;
    };
    const saeDir = await Deno.makeTempDir();
    try {
      // A SAELens SAE for the residual stream after block 0, named as TransformerLens names it.
      // Its latents are ±e_i (k = d_in) decoding to 0.9·x: far better than the mean, so the few
      // training steps here leave a usable SAE (the service fails a job whose SAE ends worse than
      // the mean), yet not exact (an exactly zero gradient also fails a job).
      const D = 64, N = 2 * D;
      const sae = initSae({
        kind: "topk",
        dIn: D,
        dSae: N,
        k: D,
        metadata: { hookName: "blocks.0.hook_resid_post" },
      }, { seed: 7 });
      sae.weights.W_enc.fill(0);
      sae.weights.W_dec.fill(0);
      sae.weights.b_enc.fill(0);
      sae.weights.b_dec.fill(0);
      for (let i = 0; i < D; i++) {
        for (const [j, sign] of [[i, 1], [D + i, -1]]) {
          sae.weights.W_enc[i * N + j] = sign; // W_enc [d_in, d_sae]
          sae.weights.W_dec[j * D + i] = 0.9 * sign; // W_dec [d_sae, d_in]
        }
      }
      await saveSae(saeDir, sae);
      const form = new FormData();
      for (const f of ["cfg.json", "sae_weights.safetensors"]) {
        form.append(f, new Blob([await Deno.readFile(`${saeDir}/${f}`)]), f);
      }
      form.append("name", "tl-sae");
      const saeRes = await fetch(`${svc.url}/saes`, { method: "POST", body: form });
      const saeRow = await saeRes.json();
      assertEquals(saeRes.status, 201, JSON.stringify(saeRow));
      assertEquals(saeRow.hook, "blocks.0.hook_resid_post");

      for (const file of MODELS) {
        const m = await post("/models", { name: file, path: `${DIR}${file}`, context_length: 64 });
        const model = await m.json();
        assertEquals(m.status, 201, JSON.stringify(model));
        const ft = await post("/finetunes", {
          model: model.id,
          sae: saeRow.id,
          kind: "kl_mse",
          tokens: 2 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          finetune_fraction: 0.5,
          eval_sequences: 2,
          ep: "wasm",
        });
        const ftJob = await ft.json();
        assertEquals(ft.status, 202, JSON.stringify(ftJob));
        const ftResult = await finish(ftJob.links);
        assert(ftResult.sae, JSON.stringify(ftResult));
        const ev = await post("/evals", {
          model: model.id,
          sae: saeRow.id,
          sequences: 2,
          batch_size: 2,
          seq_len: 16,
          ep: "wasm",
        });
        const evJob = await ev.json();
        assertEquals(ev.status, 202, JSON.stringify(evJob));
        const evResult = await finish(evJob.links);
        console.log(`${file}: eval ${JSON.stringify(evResult).slice(0, 300)}`);
      }
    } finally {
      await svc.close();
      await Deno.remove(saeDir, { recursive: true });
    }
  },
});
