import { assert, assertEquals } from "@std/assert";
import { BufferPool, poison, readF32, readU32, upload } from "../../gpu/buffers.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("upload → readback round trip is exact; poison fills NaN", async () => {
  const { device } = await testGpu();
  const rng = freshRng("buffers");
  const data = rng.normals(1000 + rng.int(100));
  const buf = upload(device, data);
  assertEquals(await readF32(device, buf, data.length), data);
  poison(device, buf);
  const after = await readF32(device, buf, data.length);
  assert(after.every(Number.isNaN));
  assertEquals((await readU32(device, buf, 1))[0], 0x7fc00000);
  buf.destroy();
});

Deno.test("BufferPool reuses a released buffer of the same size class", async () => {
  const { device } = await testGpu();
  const pool = new BufferPool(device);
  const a = pool.acquire(1000);
  assertEquals(a.size, 1024);
  pool.release(a);
  const b = pool.acquire(900);
  assert(a === b, "expected the released buffer back");
  assertEquals(pool.liveBytes, 1024);
  pool.release(b);
  pool.destroy();
});
