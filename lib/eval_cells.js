// The columns of a CE-eval as the demo's table and the live page's evaluations table show them
// (served to the browser as /ui/eval_cells.js), in one order.

export const EVAL_HEADERS = [
  "CE clean",
  "CE spliced",
  "CE zero",
  "recovered",
  "CE gap",
  "KL",
  "FVU",
  "L0",
];

/**
 * The cells of one eval result under EVAL_HEADERS (NaN where the result lacks one).
 * @param {{ ceClean: number, ceSpliced: number, ceZeroAblation: number, ceRecovered: number,
 *   ceGap: number, kl: number, recon?: { fvu?: number, l0?: number | null } }} e
 * @returns {number[]}
 */
export function evalCells(e) {
  return [
    e.ceClean,
    e.ceSpliced,
    e.ceZeroAblation,
    e.ceRecovered,
    e.ceGap,
    e.kl,
    e.recon?.fvu ?? NaN,
    e.recon?.l0 ?? NaN,
  ];
}
