// The signed controller (JumpReLU from scratch) against a plant like the one it meets: L0 falls as θ
// rises, θ drifts up by itself (MSE's push), and θ's step saturates (Adam moves it at most about
// one LR a step whatever λ is). A controller whose λ stays positive cannot hold the target there;
// the signed one pays for firing and holds it.
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { createL1Controller, updateL1 } from "../../train/l1_controller.ts";
import { freshRng } from "../util/rand.ts";

function simulate(signed: boolean, drift: number, lambda0: number, target: number) {
  let c = createL1Controller(lambda0, target, 0.02, { signed });
  let theta = 0;
  const l0s: number[] = [], lambdas: number[] = [];
  for (let step = 0; step < 600; step++) {
    const l0 = 4 * target * Math.exp(-theta / 0.3);
    l0s.push(l0);
    lambdas.push(c.lambda);
    theta += 0.003 * Math.tanh(drift + c.lambda / lambda0);
    c = updateL1(c, l0);
  }
  const tail = l0s.slice(-200);
  return {
    low: Math.min(...tail),
    high: Math.max(...tail),
    /** The mean λ over the same steps (a held L0 chatters about the target). */
    lambda: lambdas.slice(-200).reduce((a, v) => a + v, 0) / 200,
  };
}

Deno.test("signed L1 controller: λ goes negative and holds L0 where MSE alone lowers it", () => {
  const rng = freshRng("l1_controller");
  const drift = 0.2 + 2 * rng.uniform(), lambda0 = 1e-4 + rng.uniform() * 1e-2;
  const target = 8 + Math.floor(rng.uniform() * 56);
  const signed = simulate(true, drift, lambda0, target);
  assert(
    signed.low > 0.75 * target && signed.high < 1.25 * target,
    `signed: L0 in [${signed.low}, ${signed.high}] for target ${target}`,
  );
  assert(signed.lambda < 0, `signed: λ ${signed.lambda} should pay for firing`);
  const positive = simulate(false, drift, lambda0, target);
  assert(positive.high < 0.5 * target, `positive-only: L0 up to ${positive.high} held after all?`);
  assert(positive.lambda > 0);
});

Deno.test("L1 controller: a positive λ moves ×(1 ± rate); a negative one keeps its direction", () => {
  let c = createL1Controller(2, 50, 0.01);
  c = updateL1(c, 40);
  assertAlmostEquals(c.lambda, 2 * 0.99, 1e-15);
  // A negative λ handed on from a signed phase: too sparse → more reward (λ more negative).
  let n = createL1Controller(-2, 50, 0.01);
  n = updateL1(n, 40);
  assertAlmostEquals(n.lambda, -2 * 1.01, 1e-15);
  n = updateL1(n, 60);
  assertAlmostEquals(n.lambda, -2 * 1.01 * 0.99, 1e-15);
  // Signed: gain·|λ₀|·clamp(sharpness·(L0/target − 1), −1, 1); unchanged exactly at the target.
  let s = createL1Controller(0.5, 10, 0.02, { signed: true, gain: 30, sharpness: 5 });
  s = updateL1(s, 9);
  assertAlmostEquals(s.lambda, 30 * 0.5 * -0.5, 1e-12);
  s = updateL1(s, 2);
  assertAlmostEquals(s.lambda, -15, 1e-12);
  s = updateL1(s, 40);
  assertAlmostEquals(s.lambda, 15, 1e-12);
  assertEquals(updateL1(s, 10).lambda, 15);
  assertThrows(() => createL1Controller(0, 10), RangeError);
  assertThrows(() => createL1Controller(NaN, 10), RangeError);
});
