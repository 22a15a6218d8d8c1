import { assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { lrAt, validateSchedule } from "../../train/schedule.ts";
import { createL1Controller, updateL1 } from "../../train/l1_controller.ts";
import { objectiveWeights } from "../../train/objective.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("lrAt: constant, then linear decay to 0 over the last fraction", () => {
  const s = { lr: 5e-5, totalSteps: 100, decayFraction: 0.05 };
  validateSchedule(s);
  assertEquals(lrAt(s, 0), 5e-5);
  assertEquals(lrAt(s, 94), 5e-5);
  assertAlmostEquals(lrAt(s, 95), 5e-5, 1e-18); // (100-95)/5 = 1
  assertAlmostEquals(lrAt(s, 97), 5e-5 * 3 / 5, 1e-18);
  assertAlmostEquals(lrAt(s, 99), 5e-5 / 5, 1e-18);
  // Monotone non-increasing after warm-up, never negative.
  for (let i = 1; i < 100; i++) assertEquals(lrAt(s, i) <= lrAt(s, i - 1), true);
});

Deno.test("lrAt: warm-up ramps linearly", () => {
  const s = { lr: 1e-3, totalSteps: 50, warmupSteps: 10 };
  assertAlmostEquals(lrAt(s, 0), 1e-4, 1e-15);
  assertAlmostEquals(lrAt(s, 4), 5e-4, 1e-15);
  assertEquals(lrAt(s, 10), 1e-3);
});

Deno.test("validateSchedule names the bad field", () => {
  assertThrows(() => validateSchedule({ lr: -1, totalSteps: 10 }), RangeError, "lr");
  assertThrows(() => validateSchedule({ lr: 1, totalSteps: 0 }), RangeError, "totalSteps");
  assertThrows(
    () => validateSchedule({ lr: 1, totalSteps: 10, decayFraction: 2 }),
    RangeError,
    "decayFraction",
  );
});

Deno.test("L1 controller moves λ by 0.1% toward the target L0", () => {
  let c = createL1Controller(2, 50);
  c = updateL1(c, 40); // too sparse → lower λ
  assertAlmostEquals(c.lambda, 2 * 0.999, 1e-15);
  c = updateL1(c, 60); // too dense → raise λ
  assertAlmostEquals(c.lambda, 2 * 0.999 * 1.001, 1e-15);
  assertThrows(() => createL1Controller(0, 10), RangeError);
});

Deno.test("kl_mse weights: 0.5·(mse + α·kl), α = mse/(kl+1e-8)", () => {
  const rng = freshRng("objective");
  const mse = rng.uniform() + 0.01, kl = rng.uniform() * 0.1 + 1e-4;
  const w = objectiveWeights("kl_mse", mse, kl);
  const alpha = mse / (kl + 1e-8);
  assertAlmostEquals(w.alpha, alpha, 1e-12);
  assertAlmostEquals(w.loss, 0.5 * (mse + alpha * kl), 1e-12);
  assertAlmostEquals(w.kl, 0.5 * alpha, 1e-12);
  assertEquals(w.mse, 0.5);
  // With α detached, the two terms carry equal weight at this batch: α·kl = mse, up to the eps
  // (0.5·mse·1e-8/(kl + 1e-8), which matters when kl is small).
  assertAlmostEquals(w.kl * kl, w.mse * mse, mse * 1e-8 / kl + 1e-15);
  assertEquals(objectiveWeights("mse", mse, kl).kl, 0);
  assertEquals(objectiveWeights("kl_only", mse, kl).mse, 0);
});
