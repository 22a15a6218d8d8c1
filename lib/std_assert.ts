// A local stand-in for jsr:@std/assert (JSR is unreachable from our machines). Same names and
// argument order, built on node:assert/strict. With JSR, map "@std/assert" to "jsr:@std/assert@1".
import nodeAssert from "node:assert/strict";

export class AssertionError extends Error {
  override name = "AssertionError";
}

function fail_(msg: string): never {
  throw new AssertionError(msg);
}

export function fail(msg?: string): never {
  fail_(msg ?? "Failed assertion.");
}

export function assert(expr: unknown, msg = ""): asserts expr {
  if (!expr) fail_(msg || "Expected expression to be truthy");
}

export function assertFalse(expr: unknown, msg = ""): void {
  if (expr) fail_(msg || "Expected expression to be falsy");
}

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.deepStrictEqual(actual, expected);
  } catch (e) {
    fail_(`${msg ? msg + ": " : ""}${(e as Error).message}`);
  }
}

export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.notDeepStrictEqual(actual, expected);
  } catch (e) {
    fail_(`${msg ? msg + ": " : ""}${(e as Error).message}`);
  }
}

export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (!Object.is(actual, expected)) {
    fail_(`${msg ? msg + ": " : ""}Values are not strictly equal: ${actual} !== ${expected}`);
  }
}

export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance?: number,
  msg?: string,
): void {
  if (Object.is(actual, expected)) return;
  const tol = tolerance ?? Math.abs(expected) * 1e-7;
  const delta = Math.abs(expected - actual);
  if (!(delta <= tol)) {
    fail_(
      `${msg ? msg + ": " : ""}Expected actual: "${actual}" to be close to "${expected}": ` +
        `delta "${delta}" is greater than "${tol}"`,
    );
  }
}

export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === undefined || actual === null) {
    fail_(msg ?? `Expected actual: "${actual}" to not be null or undefined`);
  }
}

export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) fail_(msg ?? `Expect ${actual} > ${expected}`);
}

export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual >= expected)) fail_(msg ?? `Expect ${actual} >= ${expected}`);
}

export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) fail_(msg ?? `Expect ${actual} < ${expected}`);
}

export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) fail_(msg ?? `Expect ${actual} <= ${expected}`);
}

export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    fail_(msg ?? `Expected actual: "${actual}" to contain: "${expected}".`);
  }
}

export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (!expected.test(actual)) fail_(msg ?? `Expected actual: "${actual}" to match: "${expected}".`);
}

export function assertArrayIncludes<T>(actual: ArrayLike<T>, expected: ArrayLike<T>, msg?: string) {
  const missing: T[] = [];
  for (let i = 0; i < expected.length; i++) {
    let found = false;
    for (let j = 0; j < actual.length && !found; j++) {
      try {
        nodeAssert.deepStrictEqual(actual[j], expected[i]);
        found = true;
      } catch { /* keep looking */ }
    }
    if (!found) missing.push(expected[i]);
  }
  if (missing.length) fail_(msg ?? `Expected actual to include: ${JSON.stringify(missing)}`);
}

export function assertInstanceOf<T extends abstract new (...args: never[]) => unknown>(
  actual: unknown,
  expectedType: T,
  msg?: string,
): asserts actual is InstanceType<T> {
  if (!(actual instanceof expectedType)) {
    fail_(msg ?? `Expected object to be an instance of "${expectedType.name}"`);
  }
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

function checkError<E extends Error>(
  e: unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    fail_(`Expected error to be instance of "${ErrorClass.name}", but was "${(e as Error)?.name}"`);
  }
  if (msgIncludes !== undefined && !String((e as Error)?.message).includes(msgIncludes)) {
    fail_(`Expected error message to include "${msgIncludes}", but got "${(e as Error)?.message}"`);
  }
  return e as E;
}

export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (e) {
    return checkError(e, ErrorClass, msgIncludes);
  }
  fail_("Expected function to throw.");
}

export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return checkError(e, ErrorClass, msgIncludes);
  }
  fail_("Expected function to reject.");
}
