// Per-row top-k against a sort in float64: random widths (wide rows included), k up to 256,
// rows with many ties and negatives, outputs poisoned before the run.
import { assertEquals, assertThrows } from "@std/assert";
import { createBuffer, poison, readF32, readU32, upload } from "../../gpu/buffers.ts";
import { TopK } from "../../gpu/topk.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

/** Indices of the k largest (ties to the lower index), returned in index order. */
function topkRef(row: Float32Array, k: number): number[] {
  const order = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

async function check(rows: number, cols: number, k: number, data: Float32Array, relu: boolean) {
  const { device } = await testGpu();
  const tk = new TopK(device, { rows, cols, k }, { relu });
  const pre = upload(device, data);
  const idx = createBuffer(device, rows * k * 4), val = createBuffer(device, rows * k * 4);
  poison(device, idx);
  poison(device, val);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  tk.record(pass, pre, idx, val);
  pass.end();
  device.queue.submit([enc.finish()]);
  const gi = await readU32(device, idx, rows * k), gv = await readF32(device, val, rows * k);
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * cols, (r + 1) * cols);
    const want = topkRef(row, k);
    const got = [...gi.subarray(r * k, (r + 1) * k)];
    assertEquals(got, want, `row ${r} of ${rows}×${cols}, k=${k}`);
    const wantVals = want.map((j) => relu ? Math.max(row[j], 0) : row[j]);
    assertEquals([...gv.subarray(r * k, (r + 1) * k)], wantVals, `values of row ${r}`);
  }
  for (const b of [pre, idx, val]) b.destroy();
  tk.destroy();
}

Deno.test("topk: random shapes and k, values through ReLU, vs a float64 sort", async () => {
  const rng = freshRng("topk");
  for (let trial = 0; trial < 6; trial++) {
    const cols = 1 + rng.int(trial < 3 ? 300 : 5000), rows = 1 + rng.int(9);
    const k = 1 + rng.int(Math.min(256, cols));
    await check(rows, cols, k, rng.normals(rows * cols), trial % 2 === 0);
  }
});

Deno.test("topk: ties at the threshold go to the lower index; all-negative rows", async () => {
  const rng = freshRng("topk-ties");
  const rows = 4, cols = 97, k = 13;
  const data = new Float32Array(rows * cols);
  for (let e = 0; e < data.length; e++) data[e] = rng.int(5) - 3; // few distinct values
  for (let c = 0; c < cols; c++) data[3 * cols + c] = -1 - rng.uniform();
  await check(rows, cols, k, data, true);
  await check(rows, cols, k, data, false);
});

Deno.test("topk: a 131072-wide row with k = 256", async () => {
  const rng = freshRng("topk-wide");
  const cols = 131072;
  await check(2, cols, 256, rng.normals(2 * cols), true);
});

Deno.test("topk: k beyond the row or the kernel's limit is a named error", async () => {
  const { device } = await testGpu();
  assertThrows(() => new TopK(device, { rows: 1, cols: 8, k: 9 }), RangeError, "k must be");
  assertThrows(() => new TopK(device, { rows: 1, cols: 4096, k: 300 }), RangeError, "k must be");
});
