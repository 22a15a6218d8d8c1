// Checks of an SAE a job reads, made before any work: an SAE that cannot be read or has a
// non-finite weight is the SAE's fault and the message names it (training would otherwise stop at
// its first step blaming the learning rate and a checkpoint that does not exist).
import { loadSae } from "../sae/io.ts";
import type { Sae } from "../sae/types.ts";

export class SaeInputError extends Error {
  override name = "SaeInputError";
}

export function assertFiniteSae(sae: Sae, id: string): void {
  for (const [tensor, data] of Object.entries(sae.weights)) {
    if (!data) continue;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new SaeInputError(
          `SAE "${id}" has a non-finite weight (${data[i]}) in ${tensor} at index ${i}; it ` +
            `cannot be trained or evaluated: register a finite copy of it`,
        );
      }
    }
  }
}

/** Loads the registered SAE `id` from `path`; any failure is an SaeInputError naming it. */
export async function loadCheckedSae(path: string, id: string): Promise<Sae> {
  let sae: Sae;
  try {
    sae = await loadSae(path);
  } catch (e) {
    throw new SaeInputError(`SAE "${id}" cannot be used: ${(e as Error).message}`);
  }
  assertFiniteSae(sae, id);
  return sae;
}
