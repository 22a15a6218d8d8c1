// The non-finite stop's message says "the last good checkpoint was kept" only when one was.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { hasCheckpoint, withoutCheckpoint } from "../../jobs/nonfinite.ts";
import { assertFinite, NonFiniteError, saveCheckpoint } from "../../train/checkpoint.ts";

function stop(): NonFiniteError {
  try {
    assertFinite("W_enc", [0, 1, Infinity], 1);
  } catch (e) {
    return e as NonFiniteError;
  }
  throw new Error("assertFinite let Infinity through");
}

Deno.test("hasCheckpoint sees a whole checkpoint in any phase folder, not a temp one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assertEquals(await hasCheckpoint(`${dir}/none`), false);
    await Deno.mkdir(`${dir}/pretrain/.tmp-step-000000004-x`, { recursive: true });
    assertEquals(await hasCheckpoint(dir), false);
    await saveCheckpoint(`${dir}/finetune`, { step: 4, state: {}, tensors: new Map() });
    assertEquals(await hasCheckpoint(dir), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without a checkpoint the message blames the starting SAE, not the learning rate", () => {
  const e = stop();
  assertStringIncludes(e.message, "checkpoint was kept");
  const fromSae = withoutCheckpoint(e, "base");
  assert(fromSae instanceof NonFiniteError);
  assertStringIncludes(fromSae.message, "step 1: W_enc has a non-finite value (Infinity)");
  assertStringIncludes(fromSae.message, 'The SAE "base"');
  assert(!fromSae.message.includes("checkpoint was kept"), fromSae.message);
  const scratch = withoutCheckpoint(e, null);
  assertStringIncludes(scratch.message, "before its first checkpoint");
  assertStringIncludes(scratch.message, "lower learning rate");
});
