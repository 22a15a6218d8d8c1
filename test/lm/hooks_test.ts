import { assert, assertEquals, assertThrows } from "@std/assert";
import { listHookPoints, resolveHook } from "../../lm/hooks.ts";
import { loadTiny } from "./fixture.ts";

Deno.test("hooks: tiny-neox lists the embedding then /blocks.i/Add_2 in order", async () => {
  const model = await loadTiny();
  const hooks = listHookPoints(model);
  assertEquals(hooks.map((h) => h.name), [
    "/embed/Gather_output_0",
    "/blocks.0/Add_2_output_0",
    "/blocks.1/Add_2_output_0",
    "/blocks.2/Add_2_output_0",
    "/blocks.3/Add_2_output_0",
  ]);
  for (const [i, h] of hooks.entries()) {
    assertEquals(h.index, i);
    assertEquals(h.dims, ["batch", "seq", 128]);
    assertEquals(h.layer, i === 0 ? undefined : i - 1);
  }
});

Deno.test("hooks: resid_post/resid_pre, names and substrings resolve", async () => {
  const model = await loadTiny();
  assertEquals(resolveHook(model, "resid_post:1"), "/blocks.1/Add_2_output_0");
  assertEquals(resolveHook(model, "resid_post:-1"), "/blocks.3/Add_2_output_0");
  assertEquals(resolveHook(model, "resid_pre:0"), "/embed/Gather_output_0");
  assertEquals(resolveHook(model, "resid_pre:2"), "/blocks.1/Add_2_output_0");
  assertEquals(resolveHook(model, "/blocks.0/Add_output_0"), "/blocks.0/Add_output_0");
  assertEquals(resolveHook(model, "blocks.2/Add_2"), "/blocks.2/Add_2_output_0");
});

Deno.test("hooks: ambiguous or unknown specs are errors listing the candidates", async () => {
  const model = await loadTiny();
  const amb = assertThrows(() => resolveHook(model, "Add_2"));
  assert(amb.message.includes("ambiguous"), amb.message);
  for (let i = 0; i < 4; i++) assert(amb.message.includes(`/blocks.${i}/Add_2_output_0`));
  const none = assertThrows(() => resolveHook(model, "resid_post:7"));
  assert(none.message.includes("layer 7") && none.message.includes("/blocks.3/Add_2_output_0"));
  const bad = assertThrows(() => resolveHook(model, "nope"));
  assert(bad.message.includes('"nope"') && bad.message.includes("/embed/Gather_output_0"));
});
