import { assertEquals, assertStringIncludes } from "@std/assert";
import { FinetuneConfig, stepsOf } from "../../train/config.ts";

Deno.test("fine-tune config: paper defaults fill in", () => {
  const cfg = FinetuneConfig.parse({ kind: "kl_mse" });
  assertEquals([cfg.lr, cfg.weight_decay, cfg.grad_clip, cfg.batch_size, cfg.seq_len], [
    5e-5,
    0.01,
    1,
    8,
    128,
  ]);
  assertEquals(stepsOf(cfg), 256);
});

Deno.test("fine-tune config: bad fields are reported with their paths", () => {
  const r = FinetuneConfig.safeParse({ kind: "kl", lr: -1, init: { k: 0 }, extra: 1 });
  assertEquals(r.success, false);
  const paths = r.error!.issues.map((i) => i.path.join("."));
  for (const p of ["kind", "lr", "init.k"]) assertEquals(paths.includes(p), true, `missing ${p}`);
  assertStringIncludes(JSON.stringify(r.error!.issues), "extra");
});
