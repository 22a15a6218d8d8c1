// sae_device through the service: a topk fine-tune records where its SAE trained (what auto picks
// on this adapter, or what was asked), /health says what auto picks, and "cpu" for a kind the CPU
// trainer does not train is a 400 at POST /finetunes naming the kinds it trains.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { runtimeStatus } from "../../lm/session.ts";
import { chooseSaeDevice } from "../../sae/sae_device.ts";
import { startTestService } from "../util/service.ts";

Deno.test({
  name: "sae_device: recorded in the fine-tune's result and /health; cpu for jumprelu is a 400",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      const auto = chooseSaeDevice(
        "auto",
        svc.gpu.info,
        { kind: "topk" },
        (await runtimeStatus()).eps.cpu,
      );
      const health = await (await fetch(`${svc.url}/health`)).json();
      assertEquals(health.sae.auto, auto);
      for (const sae_device of ["auto", "cpu", "webgpu"] as const) {
        type Result = { saeDevice: string; last: { mse: number } };
        const { result: r, errors } = await svc.runJob<Result>("finetune", {
          kind: "kl_mse",
          tokens: 3 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          init: { kind: "topk", d_sae: 64, k: 4 },
          eval_sequences: 0,
          sae_device,
        });
        assertEquals(errors, [], sae_device);
        assert(r && Number.isFinite(r.last.mse), `${sae_device}: trained`);
        assertEquals(r.saeDevice, sae_device === "auto" ? auto : sae_device);
      }
      const refused = await fetch(`${svc.url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "mse",
          init: { kind: "jumprelu", d_sae: 64 },
          sae_device: "cpu",
        }),
      });
      assertEquals(refused.status, 400);
      const body = await refused.json();
      assertStringIncludes(body.error.message, 'sae_device "cpu" trains topk');
      assertStringIncludes(body.error.message, "not a jumprelu SAE");
      assertEquals(body.error.details.map((d: { path: string }) => d.path), ["sae_device"]);
    } finally {
      await svc.close();
    }
  },
});
