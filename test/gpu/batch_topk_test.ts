// BatchTopK's batch-wide selection and the threshold activation (shaders/batch_topk.wgsl) against
// float64 on random sizes (ties, negatives, fewer positives than wanted), outputs poisoned first.
import { assertEquals } from "@std/assert";
import { createBuffer, poison, readF32, upload } from "../../gpu/buffers.ts";
import { submitPass, UniformArena } from "../../gpu/kernel.ts";
import * as btk from "../../gpu/batch_topk.ts";
import { assertPassRefused, testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

Deno.test("batch_topk: select keeps the want largest positives (ties at the cut kept)", async () => {
  const rng = freshRng("batch_topk");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  for (let trial = 0; trial < 8; trial++) {
    const count = 1 + rng.int(trial < 4 ? 300 : 50000);
    const want = 1 + rng.int(trial === 7 ? count : Math.max(1, count >> 2));
    const pre = rng.normals(count);
    // Few distinct values in some trials (exact ties), mostly negative in one.
    if (trial % 3 === 1) { for (let e = 0; e < count; e++) pre[e] = Math.round(pre[e] * 4) / 4; }
    if (trial === 5) {
      for (let e = 0; e < count; e++) pre[e] = -Math.abs(pre[e]) + (e % 97 ? 0 : 1);
    }
    const gp = upload(device, pre), h = createBuffer(device, count * 4);
    const state = createBuffer(device, btk.SELECT_STATE_WORDS * 4);
    const hist = createBuffer(device, btk.SELECT_HIST_BINS * 4);
    poison(device, h);
    btk.clearSelection(device, { state, hist });
    submitPass(
      device,
      uniforms,
      "select",
      (r) => btk.select(r, { pre: gp, state, hist, h }, { count, want }),
    );
    const got = await readF32(device, h, count);
    const pos = [...pre].filter((v) => v > 0).sort((a, b) => b - a);
    const cut = pos.length >= want ? pos[want - 1] : pos.at(-1);
    const expect = Float32Array.from(pre, (v) => v > 0 && cut !== undefined && v >= cut ? v : 0);
    assertEquals([...got], [...expect], `count=${count} want=${want}`);
    const s = await btk.selection(device, state);
    assertEquals(s.positives, pos.length, "positives");
    if (pos.length) assertEquals(s.minSelected, cut, "smallest selected value");
    for (const b of [gp, h, state, hist]) b.destroy();
  }
  uniforms.destroy();
});

Deno.test("batch_topk: threshold with one θ and with one per column", async () => {
  const rng = freshRng("batch_topk-threshold");
  const { device } = await testGpu();
  const uniforms = new UniformArena(device, "test");
  for (let trial = 0; trial < 4; trial++) {
    const rows = 1 + rng.int(40), cols = trial % 2 ? 1 : 1 + rng.int(300);
    const width = cols === 1 ? 1 + rng.int(300) : cols;
    const count = rows * width;
    const pre = rng.normals(count);
    const theta = Float32Array.from({ length: cols }, () => rng.normal() * 0.5);
    const gp = upload(device, pre), gt = upload(device, theta), h = createBuffer(device, count * 4);
    poison(device, h);
    submitPass(
      device,
      uniforms,
      "threshold",
      (r) => btk.threshold(r, { pre: gp, theta: gt, h }, { count, cols }),
    );
    const got = await readF32(device, h, count);
    const expect = Float32Array.from(
      pre,
      (v, e) => v > 0 && v > theta[cols > 1 ? e % cols : 0] ? v : 0,
    );
    assertEquals([...got], [...expect], `rows=${rows} cols=${cols}`);
    for (const b of [gp, gt, h]) b.destroy();
  }
  uniforms.destroy();
});

Deno.test("batch_topk: a short histogram or output is refused by name", async () => {
  const { device } = await testGpu();
  const pre = createBuffer(device, 100 * 4), h = createBuffer(device, 99 * 4);
  const state = createBuffer(device, 32), hist = createBuffer(device, 255 * 4);
  assertPassRefused(
    device,
    (r) => btk.select(r, { pre, state, hist, h: pre }, { count: 100, want: 5 }),
    "batch_topk.select: hist holds 255 values, needs 256",
  );
  assertPassRefused(
    device,
    (r) => btk.threshold(r, { pre, theta: pre, h }, { count: 100, cols: 1 }),
    "batch_topk.threshold: h holds 99 values, needs 100",
  );
  for (const b of [pre, h, state, hist]) b.destroy();
});
