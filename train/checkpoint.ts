// Checkpoints: weights, optimizer state (tensors) and the run's state (step, data cursor, RNG,
// controller, schedule) as one directory `step-<n>/` holding tensors.safetensors + state.json.
// Written into a temp directory and renamed into place, so a crash mid-write never leaves a
// checkpoint that looks whole; only the newest `keep` are kept.
import {
  parseSafetensors,
  serializeSafetensors,
  type StTensor,
  tensorOf,
} from "../lib/safetensors.ts";

export interface Checkpoint<S> {
  step: number;
  state: S;
  tensors: Map<string, { data: Float32Array; shape: number[] }>;
}

const STEP_DIR = /^step-(\d{9})$/;

export async function saveCheckpoint<S>(
  dir: string,
  ckpt: Checkpoint<S>,
  keep = 2,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const name = `step-${String(ckpt.step).padStart(9, "0")}`;
  const tmp = `${dir}/.tmp-${name}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp);
  const tensors = new Map<string, StTensor>();
  for (const [k, t] of ckpt.tensors) tensors.set(k, tensorOf(t.data, t.shape));
  await Deno.writeFile(`${tmp}/tensors.safetensors`, serializeSafetensors(tensors));
  await Deno.writeTextFile(
    `${tmp}/state.json`,
    JSON.stringify({ step: ckpt.step, state: ckpt.state }),
  );
  const final = `${dir}/${name}`;
  await Deno.remove(final, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, final);
  const all = await listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    await Deno.remove(`${dir}/${old.name}`, { recursive: true });
  }
  return final;
}

async function listCheckpoints(dir: string): Promise<{ name: string; step: number }[]> {
  const out: { name: string; step: number }[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = e.isDirectory ? STEP_DIR.exec(e.name) : null;
      if (m) out.push({ name: e.name, step: Number(m[1]) });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest whole checkpoint in `dir`, or null when there is none. */
export async function loadLatestCheckpoint<S>(dir: string): Promise<Checkpoint<S> | null> {
  const all = await listCheckpoints(dir);
  const last = all.at(-1);
  if (!last) return null;
  const path = `${dir}/${last.name}`;
  const { step, state } = JSON.parse(await Deno.readTextFile(`${path}/state.json`));
  const file = parseSafetensors(await Deno.readFile(`${path}/tensors.safetensors`));
  const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, t] of file.tensors) {
    tensors.set(k, {
      data: new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4),
      shape: t.shape,
    });
  }
  return { step, state, tensors };
}

/** Throws if any value is NaN or ±Inf, naming the tensor, the step and the first bad index. */
export function assertFinite(name: string, data: ArrayLike<number>, step: number): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new NonFiniteError(
        `step ${step}: ${name} has a non-finite value (${data[i]}) at index ${i}; ` +
          `the run stopped and the last good checkpoint was kept. Try a lower learning rate.`,
      );
    }
  }
}

export class NonFiniteError extends Error {
  override name = "NonFiniteError";
}
