// Per-row top-k against a sort in float64: random widths (wide rows included), k up to 256,
// rows with many ties and negatives, outputs poisoned before the run.
import { assertEquals, assertThrows } from "@std/assert";
import { createBuffer, poison, readF32, readU32, upload } from "../../gpu/buffers.ts";
import { TopK, TOPK_ROW_MAX_K, type TopKVariant } from "../../gpu/topk.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

/** Indices of the k largest (ties to the lower index), returned in index order. */
function topkRef(row: Float32Array, k: number): number[] {
  const order = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/** Runs the radix kernel and, where k allows, the per-row one. */
async function check(rows: number, cols: number, k: number, data: Float32Array, relu: boolean) {
  await checkVariant(rows, cols, k, data, relu, "radix");
  if (k <= TOPK_ROW_MAX_K) await checkVariant(rows, cols, k, data, relu, "per_row");
}

async function run(
  rows: number,
  cols: number,
  k: number,
  data: Float32Array,
  relu: boolean,
  variant: TopKVariant,
) {
  const { device } = await testGpu();
  const tk = new TopK(device, { rows, cols, k }, { relu, variant });
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
  for (const b of [pre, idx, val]) b.destroy();
  tk.destroy();
  return { gi, gv };
}

async function checkVariant(
  rows: number,
  cols: number,
  k: number,
  data: Float32Array,
  relu: boolean,
  variant: TopKVariant,
) {
  const { gi, gv } = await run(rows, cols, k, data, relu, variant);
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * cols, (r + 1) * cols);
    const want = topkRef(row, k);
    const got = [...gi.subarray(r * k, (r + 1) * k)];
    assertEquals(got, want, `${variant}: row ${r} of ${rows}×${cols}, k=${k}`);
    const wantVals = want.map((j) => relu ? Math.max(row[j], 0) : row[j]);
    assertEquals([...gv.subarray(r * k, (r + 1) * k)], wantVals, `${variant}: values of row ${r}`);
  }
}

Deno.test("topk: random shapes and k, values through ReLU, vs a float64 sort", async () => {
  const rng = freshRng("topk");
  for (let trial = 0; trial < 6; trial++) {
    const cols = 1 + rng.int(trial < 3 ? 300 : 5000), rows = 1 + rng.int(trial % 2 ? 9 : 150);
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

Deno.test("topk: both kernels pick the same entries when ±0 and equal values meet", async () => {
  const rng = freshRng("topk-variants");
  for (let trial = 0; trial < 4; trial++) {
    const rows = 1 + rng.int(300), cols = 1 + rng.int(3000);
    const k = 1 + rng.int(Math.min(TOPK_ROW_MAX_K, cols));
    const data = Float32Array.from(
      { length: rows * cols },
      () => [0, -0, 1, -1][rng.int(4)] * (rng.uniform() < 0.5 ? 1 : rng.uniform()),
    );
    const a = await run(rows, cols, k, data, false, "radix");
    const b = await run(rows, cols, k, data, false, "per_row");
    assertEquals([...b.gi], [...a.gi], `indices, ${rows}×${cols} k=${k}`);
    assertEquals(
      [...new Uint32Array(b.gv.buffer)],
      [...new Uint32Array(a.gv.buffer)],
      "value bits",
    );
  }
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
  assertThrows(
    () => new TopK(device, { rows: 1, cols: 4096, k: 65 }, { variant: "per_row" }),
    RangeError,
    "per_row kernel takes k ≤ 64",
  );
});

Deno.test("topk: an output smaller than rows·k is refused by name", async () => {
  const { device } = await testGpu();
  const tk = new TopK(device, { rows: 3, cols: 10, k: 4 });
  const pre = createBuffer(device, 30 * 4), idx = createBuffer(device, 12 * 4);
  const val = createBuffer(device, 11 * 4);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assertThrows(
    () => tk.record(pass, pre, idx, val),
    RangeError,
    "topk: val holds 11 values, needs 12 (rows=3 cols=10 k=4)",
  );
  pass.end();
  for (const b of [pre, idx, val]) b.destroy();
  tk.destroy();
});
