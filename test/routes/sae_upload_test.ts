// POST /saes refuses what cannot work, naming the field (NaN/Inf weights, k beyond d_sae or the
// TopK kernel, bad data_offsets, a cfg.json that is not an object); uploads past the concurrency
// cap are a 429; an SAE or model a queued job reads cannot be deleted (409) until the job ends.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { models } from "../../db/schema.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { serializeSafetensors, type StTensor } from "../../lib/safetensors.ts";
import { EMBEDDED_MODEL } from "../../main.ts";
import { createApp } from "../../routes/app.ts";
import { UploadGate } from "../../routes/uploads.ts";
import { saeLensConfig, saeLensTensors } from "../../sae/io.ts";
import { randomSae } from "../sae/ref.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

type Bytes = Uint8Array<ArrayBuffer>;

function form(cfg: unknown, weights: Bytes): FormData {
  const f = new FormData();
  f.append("cfg.json", new Blob([typeof cfg === "string" ? cfg : JSON.stringify(cfg)]), "cfg.json");
  f.append("sae_weights.safetensors", new Blob([weights]), "sae_weights.safetensors");
  return f;
}

/** A safetensors file with a hand-written header (to lie about offsets and shapes). */
function rawSafetensors(header: unknown, data: Uint8Array): Bytes {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

async function setup(uploads?: UploadGate) {
  const dataDir = await Deno.makeTempDir();
  const database = await openDatabase({ dataDir: "memory://" });
  await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
  const events = new EventHub(new DbEventStore(database.db));
  const runner = new JobRunner(new DbJobStore(database.db), events);
  // Never started: submitted jobs stay queued, which is what the 409 checks need.
  for (const kind of ["finetune", "eval"]) runner.register(kind, () => Promise.resolve(null));
  const app = createApp({
    config: Config.parse({ dataDir }),
    gpu: await testGpu(),
    database,
    runner,
    events,
    startedAt: performance.now(),
    uploads,
  });
  return {
    app,
    runner,
    close: async () => {
      await database.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

Deno.test("POST /saes: NaN/Inf weights, absurd k, lying offsets are 400s naming the field", async () => {
  const rng = freshRng("sae-upload");
  const { app, close } = await setup();
  try {
    const sae = randomSae(rng, { kind: "topk", dIn: 8, dSae: 32, k: 4 });
    const cfg = saeLensConfig(sae);
    const tensors = saeLensTensors(sae);
    const good = await app.request("/saes", {
      method: "POST",
      body: form(cfg, serializeSafetensors(tensors) as Bytes),
    });
    assertEquals(good.status, 201, await good.clone().text());
    const goodId = (await good.json()).id;
    const down = await app.request(`/saes/${goodId}/sae_weights.safetensors`);
    assertEquals(new Uint8Array(await down.arrayBuffer()), serializeSafetensors(tensors));
    assertEquals(await (await app.request(`/saes/${goodId}/cfg.json`)).json(), cfg);

    const poisoned = (name: string, v: number) => {
      const t = new Map(tensors);
      const src = t.get(name)!;
      const f = new Float32Array(src.bytes.slice().buffer);
      f[rng.int(f.length)] = v;
      t.set(name, { ...src, bytes: new Uint8Array(f.buffer) } as StTensor);
      return serializeSafetensors(t) as Bytes;
    };
    const W = new Uint8Array(4 * 8 * 32);
    const cases: [string, FormData, string][] = [
      ["NaN in W_enc", form(cfg, poisoned("W_enc", NaN)), "W_enc"],
      ["Inf in b_dec", form(cfg, poisoned("b_dec", Infinity)), "b_dec"],
      ["-Inf in W_dec", form(cfg, poisoned("W_dec", -Infinity)), "W_dec"],
      ["k = 1e9", form({ ...cfg, k: 1e9 }, serializeSafetensors(tensors) as Bytes), "k"],
      ["k > d_sae", form({ ...cfg, k: 33 }, serializeSafetensors(tensors) as Bytes), "k"],
      ["k = 0", form({ ...cfg, k: 0 }, serializeSafetensors(tensors) as Bytes), "k"],
      [
        "negative data_offsets",
        form(
          cfg,
          rawSafetensors({ W_enc: { dtype: "F32", shape: [8, 32], data_offsets: [-8, 1016] } }, W),
        ),
        "data_offsets",
      ],
      [
        "reversed data_offsets",
        form(cfg, rawSafetensors({ W_enc: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, W)),
        "data_offsets",
      ],
      [
        "data_offsets past the data",
        form(
          cfg,
          rawSafetensors({ W_enc: { dtype: "F32", shape: [8, 32], data_offsets: [8, 1032] } }, W),
        ),
        "data_offsets",
      ],
      [
        "shape not a list",
        form(cfg, rawSafetensors({ W_enc: { dtype: "F32", shape: 5, data_offsets: [0, 20] } }, W)),
        "shape",
      ],
      [
        "overlapping tensors",
        form(
          cfg,
          rawSafetensors({
            a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
            b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
          }, W),
        ),
        "overlap",
      ],
      ["cfg.json null", form("null", serializeSafetensors(tensors) as Bytes), "cfg.json"],
      ["cfg.json a list", form("[1]", serializeSafetensors(tensors) as Bytes), "cfg.json"],
    ];
    for (const [what, body, field] of cases) {
      const r = await app.request("/saes", { method: "POST", body });
      const text = await r.text();
      assertEquals(r.status, 400, `${what}: ${text}`);
      const msg = JSON.parse(text).error.message as string;
      assertStringIncludes(msg, field, what);
      assert(!/is not a function|Cannot read properties/.test(msg), `${what}: ${msg}`);
    }
    assertEquals((await (await app.request("/saes")).json()).saes.length, 1, "only the good one");
  } finally {
    await close();
  }
});

Deno.test("uploads past the concurrency cap are 429; delete of an SAE or model in use is 409", async () => {
  const rng = freshRng("sae-409");
  const { app, runner, close } = await setup(new UploadGate(1));
  try {
    const sae = randomSae(rng, { kind: "relu", dIn: 8, dSae: 16 });
    const bytes = serializeSafetensors(saeLensTensors(sae)) as Bytes;
    // An upload whose body is still arriving holds the only slot.
    let release = () => {};
    const held = new Promise<void>((r) => release = r);
    const boundary = "XyZ";
    const enc = new TextEncoder();
    const head = enc.encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="cfg.json"; filename="cfg.json"\r\n\r\n` +
        `${JSON.stringify(saeLensConfig(sae))}\r\n--${boundary}\r\n` +
        `Content-Disposition: form-data; name="sae_weights.safetensors"; filename="w"\r\n\r\n`,
    );
    const tail = enc.encode(`\r\n--${boundary}--\r\n`);
    const slow = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(head);
        await held;
        c.enqueue(bytes);
        c.enqueue(tail);
        c.close();
      },
    });
    const first = app.request("/saes", {
      method: "POST",
      body: slow,
      headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` },
    });
    await new Promise((r) => setTimeout(r, 100));
    const busy = await app.request("/saes", {
      method: "POST",
      body: form(saeLensConfig(sae), bytes),
    });
    assertEquals(busy.status, 429, await busy.clone().text());
    assertEquals((await busy.json()).error.code, "too_many_uploads");
    release();
    const r = await first;
    assertEquals(r.status, 201, await r.clone().text());
    const id = (await r.json()).id;

    // A queued job that reads the SAE: 409 naming it; after its cancel the delete goes through.
    const job = await runner.submit("finetune", { kind: "kl_mse", sae: id, model: "tiny-neox" });
    const refused = await app.request(`/saes/${id}`, { method: "DELETE" });
    assertEquals(refused.status, 409);
    const body = await refused.json();
    assertEquals(body.error.code, "in_use");
    assertEquals(body.error.details.jobs, [job.id]);
    assertEquals((await app.request(`/saes/${id}`)).status, 200, "still there");
    await runner.cancel(job.id);
    assertEquals((await app.request(`/saes/${id}`, { method: "DELETE" })).status, 200);
    assertEquals((await app.request(`/saes/${id}`)).status, 404);

    // The same for an uploaded model; the built-in one is never deleted.
    const mf = new FormData();
    mf.append(
      "model",
      new Blob([
        await Deno.readFile(new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url)),
      ]),
      "m.onnx",
    );
    const m = await app.request("/models", { method: "POST", body: mf });
    assertEquals(m.status, 201, await m.clone().text());
    const mid = (await m.json()).id;
    const job2 = await runner.submit("eval", { sae: "x", model: mid });
    assertEquals((await app.request(`/models/${mid}`, { method: "DELETE" })).status, 409);
    await runner.cancel(job2.id);
    assertEquals((await app.request(`/models/${mid}`, { method: "DELETE" })).status, 200);
    assertEquals((await app.request(`/models/tiny-neox`, { method: "DELETE" })).status, 409);
  } finally {
    await close();
  }
});
