import { assert, assertEquals, assertThrows } from "@std/assert";
import { createBuffer, poison, readF32, write } from "../../gpu/buffers.ts";
import { GradClipper } from "../../gpu/grad_norm.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, relError } from "../util/rand.ts";

for (const chunked of [false, true]) {
  Deno.test(`global grad norm and clipping match float64 (chunked=${chunked})`, async () => {
    const { device } = await testGpu();
    const rng = freshRng("clip");
    const sizes = [3000 + rng.int(500), 1 + rng.int(3), 257 + rng.int(40), 70000 + rng.int(999)];
    const host = sizes.map((n) => rng.normals(n, 0.01 + rng.uniform()));
    const grads = sizes.map((n, j) => {
      const b = createBuffer(device, n * 4, `g${j}`);
      write(device, b, host[j]);
      return { grad: b, size: n };
    });
    let ss = 0;
    for (const h of host) for (const x of h) ss += x * x;
    const norm = Math.sqrt(ss);
    const clipper = new GradClipper(device, grads, {
      maxBindingBytes: chunked ? 4096 : undefined,
    });

    // Measure only: scale 1, grads untouched.
    poison(device, clipper.result);
    clipper.clip(0);
    let r = await clipper.read();
    assert(Math.abs(r.norm - norm) / norm <= 1e-5, `norm ${r.norm} vs ${norm}`);
    assertEquals(r.scale, 1);

    // Above the norm: no clipping.
    poison(device, clipper.result);
    clipper.clip(norm * 2);
    r = await clipper.read();
    assertEquals(r.scale, 1);

    // Below the norm: scaled by maxNorm/(norm+1e-6), in place.
    const maxNorm = norm * (0.1 + 0.5 * rng.uniform());
    const want = maxNorm / (norm + 1e-6);
    poison(device, clipper.result);
    clipper.clip(maxNorm);
    r = await clipper.read();
    assert(Math.abs(r.norm - norm) / norm <= 1e-5, `norm ${r.norm} vs ${norm}`);
    assert(Math.abs(r.scale - want) / want <= 1e-5, `scale ${r.scale} vs ${want}`);
    for (let j = 0; j < sizes.length; j++) {
      const got = await readF32(device, grads[j].grad, sizes[j]);
      const ref = Float64Array.from(host[j], (x) => x * want);
      const e = relError(got, ref);
      assert(e <= 1e-5, `buffer ${j}: rel ${e}`);
    }
    clipper.destroy();
    for (const g of grads) g.grad.destroy();
  });
}

Deno.test("grad_norm: a gradient buffer shorter than its size is refused by name", async () => {
  const { device } = await testGpu();
  const g = createBuffer(device, 10 * 4);
  assertThrows(
    () => new GradClipper(device, [{ grad: g, size: 10 }, { grad: g, size: 11 }]),
    RangeError,
    "grad_norm: grads[1] holds 10 values, needs 11 (size=11)",
  );
  g.destroy();
});
