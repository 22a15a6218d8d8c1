// Every kind trained from scratch with its defaults (only init.kind and d_sae set) comes out alive
// at a small budget: few dead latents, a sane L0 at evaluation, FVU below 1, and BatchTopK's
// inference threshold giving L0 within 25% of k.
import { assert } from "@std/assert";
import { startTestService } from "../util/service.ts";

Deno.test({
  name: "each kind trains a live SAE from scratch with its defaults",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      for (const kind of ["relu", "jumprelu", "batchtopk", "topk"] as const) {
        const job = await svc.runner.submit("finetune", {
          kind: "kl_mse",
          tokens: 32 * 8 * 64,
          seq_len: 64,
          init: { kind, d_sae: 512 },
          metrics_every: 4,
          eval_sequences: 16,
        });
        type Row = { l0: number; fvu?: number; deadFraction?: number; phase: string };
        type Result = { eval: { recon: { fvu: number; l0: number } } };
        let result: Result | null = null, last: Row | null = null;
        const errors: unknown[] = [];
        for await (const e of svc.events.subscribe(job.id)) {
          if (e.type === "metrics") last = e.data as Row;
          if (e.type === "result") result = e.data as Result;
          if (e.type === "error") errors.push(e.data);
        }
        const r = result as Result | null, m = last as Row | null;
        assert(r && m, `${kind}: ${JSON.stringify(errors)}`);
        const { l0, fvu } = r.eval.recon;
        assert(fvu < 1, `${kind}: FVU ${fvu}`);
        // JumpReLU starts where 8·target_l0 (here d_sae/2) latents fire and comes down to its
        // target one θ step at a time: after 32 steps it is on its way, below where it started
        // (it holds the target at 524k tokens, bench/RESULTS.md).
        const upper = kind === "jumprelu" ? 0.9 * 512 / 2 : 128;
        assert(l0 >= 2 && l0 <= upper, `${kind}: L0 at evaluation ${l0}, expected ≤ ${upper}`);
        assert(m.fvu !== undefined && m.fvu < 1, `${kind}: last step's FVU ${m.fvu}`);
        assert(
          m.deadFraction !== undefined && m.deadFraction <= 0.5,
          `${kind}: dead fraction ${m.deadFraction}`,
        );
        if (kind === "batchtopk") {
          assert(Math.abs(l0 - 16) <= 0.25 * 16, `batchtopk: inference L0 ${l0} for k = 16`);
        }
      }
    } finally {
      await svc.close();
    }
  },
});
