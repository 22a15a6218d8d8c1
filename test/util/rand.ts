// Fresh random inputs each run, reproducible from the printed seed (SPLICE_SEED=… to replay).
import { mulberry32 } from "../../lib/rng.ts";

export interface Rng {
  seed: number;
  uniform(): number;
  normal(): number;
  int(n: number): number;
  normals(n: number, scale?: number): Float32Array;
  normals64(n: number, scale?: number): Float64Array;
}

export function freshRng(label = "test"): Rng {
  const env = Deno.env.get("SPLICE_SEED");
  const seed = env ? Number(env) : (Math.random() * 2 ** 31) >>> 0;
  if (!env) console.log(`${label}: seed ${seed} (SPLICE_SEED=${seed} replays it)`);
  const u = mulberry32(seed);
  const normal = () => {
    const a = Math.max(u(), 1e-12);
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  };
  return {
    seed,
    uniform: u,
    normal,
    int: (n) => Math.floor(u() * n),
    normals: (n, scale = 1) => Float32Array.from({ length: n }, () => normal() * scale),
    normals64: (n, scale = 1) => Float64Array.from({ length: n }, () => normal() * scale),
  };
}

/** ‖a−b‖/‖b‖ over two arrays of the same length. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`relError: lengths differ (${a.length} vs ${b.length})`);
  }
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (!Number.isFinite(num)) return Infinity;
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Largest |a−b| / (atol + rtol·|b|); ≤ 1 means every element is within tolerance. NaN → Infinity. */
export function maxScaledError(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rtol: number,
  atol: number,
): number {
  if (a.length !== b.length) throw new Error(`lengths differ (${a.length} vs ${b.length})`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}
