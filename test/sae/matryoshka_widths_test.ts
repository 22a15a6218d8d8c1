import { assertThrows } from "@std/assert";
import { checkWidths } from "../../sae/matryoshka_widths.ts";

Deno.test("matryoshka: prefix widths are checked", () => {
  checkWidths([2, 5, 9], 9, "t");
  for (
    const [w, msg] of [
      [[], "t: no prefix widths given"],
      [[3, 3, 9], "strictly increasing"],
      [[0, 9], "strictly increasing"],
      [[2, 8], "the last prefix width must be d_sae = 9, got [2,8]"],
      [[2.5, 9], "strictly increasing"],
    ] as const
  ) {
    assertThrows(() => checkWidths(w as unknown as number[], 9, "t"), RangeError, msg);
  }
});
