import { assertEquals, assertThrows } from "@std/assert";
import { downloadSae, makeParamGroups, uploadSae } from "../../sae/params.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";
import { randomSae } from "./ref.ts";

Deno.test("uploadSae → downloadSae is exact; param groups pair params with grads", async () => {
  const { device } = await testGpu();
  const rng = freshRng("params");
  const sae = randomSae(rng, { kind: "jumprelu", dIn: 7 + rng.int(5), dSae: 19 + rng.int(9) });
  const p = uploadSae(device, sae);
  const back = await downloadSae(device, p, sae.cfg);
  for (const k of ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"] as const) {
    assertEquals(back.weights[k], sae.weights[k], k);
  }
  const grads = { W_enc: p.W_enc, b_enc: p.b_enc, W_dec: p.W_dec, b_dec: p.b_dec };
  assertThrows(() => makeParamGroups(device, sae.cfg, p, grads), Error, "threshold");
  const groups = makeParamGroups(device, sae.cfg, p, grads, {
    trainable: (n) => n !== "threshold",
  });
  assertEquals(groups.map((g) => [g.name, g.decay]), [
    ["W_enc", true],
    ["b_enc", false],
    ["W_dec", true],
    ["b_dec", false],
  ]);
});
