import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { bandChart, barChart, lineChart, ticks } from "../../experiments/svg.ts";

function wellFormed(svg: string) {
  assert(svg.startsWith("<svg") && svg.endsWith("</svg>"));
  assert(!/NaN|Infinity|undefined/.test(svg), "no non-finite coordinates");
  // Every opened element is closed or self-closed.
  const opens = (svg.match(/<(svg|text)\b/g) ?? []).length;
  const closes = (svg.match(/<\/(svg|text)>/g) ?? []).length;
  assertEquals(opens, closes);
}

Deno.test("ticks are round and cover the range", () => {
  assertEquals(ticks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assertEquals(ticks(0.013, 0.049, 4), [0.02, 0.03, 0.04]);
});

Deno.test("charts render well-formed SVG with escaped names", () => {
  const line = lineChart("CE gap", "tokens", "nats", [
    { name: "mse <control>", points: [[0, 0.3], [1000, 0.28]] },
    { name: "kl_mse", points: [[0, 0.3], [1000, 0.2]] },
  ]);
  wellFormed(line);
  assertStringIncludes(line, "mse &#60;control&#62;");
  assertEquals((line.match(/<path /g) ?? []).length, 2);
  const bar = barChart("final CE gap", "nats", [{ name: "a", value: 0.2 }, {
    name: "b",
    value: -0.1,
  }]);
  wellFormed(bar);
  const band = bandChart("stability", "tokens", "cos", [{
    name: "W_enc",
    points: [[0, 1, 1, 1], [10, 0.9, 0.95, 0.99]],
  }]);
  wellFormed(band);
  assertStringIncludes(band, "<polygon");
});

Deno.test("a flat or empty series still gives finite coordinates", () => {
  wellFormed(
    lineChart("flat", "x", "y", [{ name: "a", points: [[1, 5], [1, 5]] }, {
      name: "empty",
      points: [],
    }]),
  );
});
