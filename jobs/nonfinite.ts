// A run that stops on a non-finite value says "the last good checkpoint was kept"; before its first
// checkpoint there is none, and at its first steps the SAE it started from is the likelier cause
// than the learning rate. This rewrites the message to say what is true.
import { NonFiniteError } from "../train/checkpoint.ts";

/** True when `dir` (a job's checkpoints, one folder per phase) holds a whole checkpoint. */
export async function hasCheckpoint(dir: string): Promise<boolean> {
  try {
    for await (const phase of Deno.readDir(dir)) {
      if (!phase.isDirectory) continue;
      for await (const e of Deno.readDir(`${dir}/${phase.name}`)) {
        if (e.isDirectory && e.name.startsWith("step-")) return true;
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return false;
}

export function withoutCheckpoint(e: NonFiniteError, startSae: string | null): NonFiniteError {
  const what = e.message.replace(/; the run stopped and the last good checkpoint was kept.*$/s, "");
  return new NonFiniteError(
    `${what}; the run stopped before its first checkpoint, so nothing was kept. ` +
      (startSae
        ? `The SAE "${startSae}" it started from is the likely cause (weights too large to ` +
          `train); if it is not, try a lower learning rate.`
        : `Try a lower learning rate.`),
  );
}
