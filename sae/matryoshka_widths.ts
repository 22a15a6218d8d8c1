// A Matryoshka SAE's nested prefix widths, checked the same way wherever they come from: a request
// (train/config.ts), a file (sae/io.ts), the trainer (sae/matryoshka_trainer.ts).

/**
 * Checks prefix widths: integers, strictly increasing, the first ≥ 1, the last = d_sae. The message
 * names `what` and says what is wrong.
 */
export function checkWidths(widths: readonly number[], dSae: number, what: string): void {
  if (widths.length === 0) throw new RangeError(`${what}: no prefix widths given`);
  widths.forEach((w, g) => {
    if (!Number.isInteger(w) || w < 1 || (g > 0 && w <= widths[g - 1])) {
      throw new RangeError(
        `${what}: prefix widths must be strictly increasing positive integers, got [${widths}]`,
      );
    }
  });
  if (widths.at(-1) !== dSae) {
    throw new RangeError(
      `${what}: the last prefix width must be d_sae = ${dSae}, got [${widths}]`,
    );
  }
}
