import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { DEAD_L0, MIN_JUDGED_STEPS, saeHealth } from "../../train/health.ts";

Deno.test("health: a sparse SAE that reconstructs passes", () => {
  assertEquals(saeHealth({ l0: 16, fvu: 0.05, source: "evaluation", steps: 64 }), { ok: true });
  assertEquals(saeHealth({ l0: DEAD_L0, fvu: 1, source: "evaluation", steps: 64 }).ok, true);
});

Deno.test("health: a dead SAE fails, naming L0, the source and what to change", () => {
  const h = saeHealth({ l0: 0.01, fvu: 0.9, source: "evaluation", steps: 64 });
  assert(!h.ok);
  assertStringIncludes(h.reason!, "dead SAE: L0 0.0100");
  assertStringIncludes(h.reason!, "(evaluation)");
  assertStringIncludes(h.reason!, "target_l0");
});

Deno.test("health: FVU above 1 is diverged; both reasons are given together", () => {
  const h = saeHealth({ l0: 0, fvu: 1.2, source: "last training step", steps: 64 });
  assert(!h.ok);
  assertStringIncludes(h.reason!, "dead SAE");
  assertStringIncludes(h.reason!, "diverged SAE: FVU 1.20 > 1");
  assert(!saeHealth({ l0: 30, fvu: 1.0001, source: "x", steps: 64 }).ok);
});

Deno.test("health: non-finite numbers fail", () => {
  assert(!saeHealth({ l0: NaN, fvu: 0.1, source: "x", steps: 64 }).ok);
  assert(!saeHealth({ l0: 10, fvu: Infinity, source: "x", steps: 64 }).ok);
});

Deno.test("health: runs shorter than MIN_JUDGED_STEPS are not judged", () => {
  const dead = { l0: 0, fvu: 3, source: "evaluation" };
  assert(saeHealth({ ...dead, steps: MIN_JUDGED_STEPS - 1 }).ok);
  assert(!saeHealth({ ...dead, steps: MIN_JUDGED_STEPS }).ok);
});
