import { assertEquals, assertThrows } from "@std/assert";
import {
  assertFinite,
  loadLatestCheckpoint,
  NonFiniteError,
  saveCheckpoint,
} from "../../train/checkpoint.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("checkpoints round-trip bit-exactly; the newest wins; old ones are pruned", async () => {
  const dir = await Deno.makeTempDir();
  const rng = freshRng("checkpoint");
  try {
    assertEquals(await loadLatestCheckpoint(dir + "/none"), null);
    const w = rng.normals(12);
    for (const step of [10, 20, 30]) {
      await saveCheckpoint(dir, {
        step,
        state: { cursor: step * 8, rng: 1234 + step },
        tensors: new Map([["W", { data: w.map((v) => v + step), shape: [3, 4] }]]),
      });
    }
    const back = await loadLatestCheckpoint<{ cursor: number; rng: number }>(dir);
    assertEquals(back!.step, 30);
    assertEquals(back!.state, { cursor: 240, rng: 1264 });
    assertEquals(back!.tensors.get("W")!.data, w.map((v) => v + 30));
    assertEquals(back!.tensors.get("W")!.shape, [3, 4]);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, ["step-000000020", "step-000000030"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a half-written checkpoint (temp dir) is ignored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await saveCheckpoint(dir, { step: 5, state: {}, tensors: new Map() });
    await Deno.mkdir(`${dir}/.tmp-step-000000006-deadbeef`);
    assertEquals((await loadLatestCheckpoint(dir))!.step, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("assertFinite names the tensor, the step and the index", () => {
  assertFinite("W_enc", [1, 2, 3], 7);
  assertThrows(
    () => assertFinite("W_dec", [1, NaN], 7),
    NonFiniteError,
    "step 7: W_dec has a non-finite value (NaN) at index 1",
  );
  assertThrows(() => assertFinite("loss", [Infinity], 3), NonFiniteError, "Infinity");
});
