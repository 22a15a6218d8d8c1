// Matryoshka BatchTopK trained from scratch with its defaults (only init.kind and d_sae set: the
// default prefix ladder) comes out alive at a small budget through the finetune job: FVU below 1,
// inference L0 within 25% of k, few dead latents, and the final eval's per-prefix rows, whose CE
// gap falls from the narrowest prefix to the whole SAE.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { SaeInit } from "../../train/config.ts";
import { matryoshkaWidthsFor } from "../../train/scratch_defaults.ts";
import { startTestService } from "../util/service.ts";

Deno.test("matryoshka widths: the doubling ladder by default, a given list checked", () => {
  const init = (o: Record<string, unknown>) =>
    SaeInit.parse({ kind: "matryoshka_batchtopk", ...o });
  assertEquals(matryoshkaWidthsFor(init({ d_sae: 1024 })), [64, 128, 256, 512, 1024]);
  assertEquals(matryoshkaWidthsFor(init({ d_sae: 100 })), [6, 12, 25, 50, 100]);
  assertEquals(matryoshkaWidthsFor(init({ d_sae: 6 })), [1, 3, 6]);
  assertEquals(matryoshkaWidthsFor(init({ d_sae: 1 })), [1]);
  assertEquals(
    matryoshkaWidthsFor(init({ d_sae: 300, matryoshka_widths: [10, 300] })),
    [10, 300],
  );
  // The schema refuses a bad ladder (POST /finetunes answers 400)...
  assertThrows(
    () => init({ d_sae: 300, matryoshka_widths: [10, 200] }),
    Error,
    "matryoshka_widths: the last prefix width must be d_sae = 300, got [10,200]",
  );
  assertThrows(
    () => SaeInit.parse({ kind: "topk", d_sae: 300, matryoshka_widths: [10, 300] }),
    Error,
    "only matryoshka_batchtopk has prefixes, not topk",
  );
  // ...and the widths' own check guards what reaches the trainer by another way.
  const unchecked = (w: number[]) => ({ ...init({ d_sae: 300 }), matryoshka_widths: w });
  assertThrows(
    () => matryoshkaWidthsFor(unchecked([10, 200])),
    RangeError,
    "matryoshka_widths: the last prefix width must be d_sae = 300, got [10,200]",
  );
  assertThrows(
    () => matryoshkaWidthsFor(unchecked([20, 10, 300])),
    RangeError,
    "strictly increasing",
  );
});

Deno.test({
  name: "matryoshka_batchtopk trains a live SAE from scratch with its defaults",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    try {
      type Row = { l0: number; fvu?: number; deadFraction?: number };
      type Prefix = { width: number; ceGap: number; l0: number | null; fvu: number };
      type Result = { eval: { recon: { fvu: number; l0: number }; prefixes: Prefix[] } };
      const { result: r, metrics, errors } = await svc.runJob<Result, Row>("finetune", {
        kind: "kl_mse",
        tokens: 32 * 8 * 64,
        seq_len: 64,
        init: { kind: "matryoshka_batchtopk", d_sae: 512 },
        metrics_every: 4,
        eval_sequences: 16,
      });
      const m = metrics.at(-1);
      assert(r && m, JSON.stringify(errors));
      const { l0, fvu } = r.eval.recon;
      assert(fvu < 1, `FVU ${fvu}`);
      assert(Math.abs(l0 - 16) <= 0.25 * 16, `inference L0 ${l0} for k = 16`);
      assert(m.deadFraction !== undefined && m.deadFraction <= 0.5, `dead ${m.deadFraction}`);
      const p = r.eval.prefixes;
      assertEquals(p.map((x) => x.width), [32, 64, 128, 256, 512], "the default ladder");
      assertEquals(p.at(-1)!.fvu, fvu, "the last prefix is the whole SAE");
      assert(p[0].ceGap > p.at(-1)!.ceGap, `CE gap by prefix ${p.map((x) => x.ceGap)}`);
      assert(p[0].l0! < p.at(-1)!.l0!, `L0 by prefix ${p.map((x) => x.l0)}`);
    } finally {
      await svc.close();
    }
  },
});
