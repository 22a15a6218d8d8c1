// Hostile ONNX external data, through POST /models as an upload and as a registration by path:
// `..`, an absolute path, a symlink out of the model's folder, /dev/zero with large dims, a FIFO, a
// character device, dims larger than the file, a negative offset. Each is a 400 in the stable
// error shape that echoes no byte of the host file, nothing is registered, and RSS grows by less
// than RSS_BOUND over all of them (today's code read 1 GiB of /dev/zero per upload and hung on
// the FIFO).
import { assert, assertEquals } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { DataType, decodeModel, encodeModel, onnx } from "../../lm/onnx.ts";
import { createApp } from "../../routes/app.ts";
import { testGpu } from "../util/gpu.ts";

const RSS_BOUND = 300 * 2 ** 20;
const SECRET = "HOST-SECRET-0123456789abcdef-HOST-SECRET-0123456789abcdef";

const fixture = await Deno.readFile(
  new URL("../../fixtures/tiny-neox/tiny-neox.onnx", import.meta.url),
);

/** The fixture LM plus one initializer whose data is "external" as described. */
function withExternal(
  entries: Record<string, string>,
  dims: number[],
  dataType = DataType.INT32,
): Uint8Array<ArrayBuffer> {
  const m = decodeModel(fixture);
  m.graph!.initializer!.push(onnx.TensorProto.create({
    name: "hostile",
    dims,
    dataType,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: Object.entries(entries).map(([key, value]) =>
      onnx.StringStringEntryProto.create({ key, value })
    ),
  }));
  return encodeModel(m).slice() as Uint8Array<ArrayBuffer>;
}

async function mkfifo(path: string): Promise<void> {
  const r = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert(r.success, "mkfifo failed");
}

Deno.test({
  name: "hostile external data in uploads and registrations: 400, nothing read, bounded RSS",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const root = await Deno.realPath(await Deno.makeTempDir());
    const outside = await Deno.realPath(await Deno.makeTempDir());
    const secret = `${outside}/secret.bin`;
    await Deno.writeTextFile(secret, SECRET.repeat(64));
    const database = await openDatabase({ dataDir: "memory://" });
    const events = new EventHub(new DbEventStore(database.db));
    const app = createApp({
      config: Config.parse({ dataDir, roots: [root] }),
      gpu: await testGpu(),
      database,
      runner: new JobRunner(new DbJobStore(database.db), events),
      events,
      startedAt: performance.now(),
    });
    const upDirs = () =>
      [...Deno.readDirSync(dataDir)].length &&
      [...Deno.readDirSync(`${dataDir}/models`)].length;
    // From the model's folder inside the root: enough ".." to reach "/" whatever the depth.
    const up = "../".repeat(root.split("/").length + 2);
    const GIB_FLOATS = [2 ** 28]; // 1 GiB of FLOAT
    const cases: [string, Record<string, string>, number[], number?][] = [
      ["relative traversal", { location: `${up}${secret.slice(1)}` }, [16]],
      ["absolute path", { location: secret }, [16]],
      ["absolute /dev/zero, 1 GiB", { location: "/dev/zero" }, GIB_FLOATS, DataType.FLOAT],
      ["traversal to /dev/zero", { location: `${up}dev/zero` }, GIB_FLOATS, DataType.FLOAT],
      ["negative offset", { location: "model.onnx", offset: "-8" }, [4]],
      ["offset past the end", { location: "model.onnx", offset: "99999999999" }, [4]],
      ["dims larger than the file", { location: "model.onnx" }, GIB_FLOATS, DataType.FLOAT],
      ["length that lies", { location: "model.onnx", length: "16" }, GIB_FLOATS, DataType.FLOAT],
      ["negative dims", { location: "model.onnx" }, [-4], DataType.FLOAT],
    ];
    const rss0 = Deno.memoryUsage().rss;
    let peak = rss0;
    const check = async (what: string, r: Response) => {
      const text = await r.text();
      assertEquals(r.status, 400, `${what}: ${text.slice(0, 300)}`);
      const body = JSON.parse(text);
      assertEquals(typeof body.error?.code, "string", `${what}: ${text}`);
      assert(body.error.message.length > 0, what);
      assert(!text.includes("HOST-SECRET"), `${what} echoed host bytes: ${text}`);
      assert(!text.includes(dataDir), `${what} shows the data dir: ${text}`);
      peak = Math.max(peak, Deno.memoryUsage().rss);
    };
    const post = (init: RequestInit) =>
      app.request("/models", { method: "POST", signal: AbortSignal.timeout(30_000), ...init });
    try {
      // As uploads.
      for (const [what, entries, dims, dt] of cases) {
        const form = new FormData();
        form.append("model", new Blob([withExternal(entries, dims, dt)]), "m.onnx");
        await check(`upload, ${what}`, await post({ body: form }));
      }
      assertEquals(upDirs(), 0, "failed uploads leave no folder behind");

      // As registrations by path, each model in its own folder under the root, with what a
      // caller with write access there could plant: a symlink out, a FIFO, a device link.
      const planted: [string, (dir: string) => Promise<void>, Record<string, string>, number[]][] =
        [
          ["symlink out of the folder", (d) => Deno.symlink(secret, `${d}/w.bin`), {
            location: "w.bin",
          }, [16]],
          ["FIFO", (d) => mkfifo(`${d}/w.bin`), { location: "w.bin" }, [16]],
          ["character device link", (d) => Deno.symlink("/dev/zero", `${d}/w.bin`), {
            location: "w.bin",
          }, GIB_FLOATS],
          ["directory", (d) => Deno.mkdir(`${d}/w.bin`), { location: "w.bin" }, [16]],
          ...cases.map(([w, e, d]) =>
            [w, () => Promise.resolve(), e, d] as [
              string,
              () => Promise<void>,
              Record<string, string>,
              number[],
            ]
          ),
        ];
      let k = 0;
      for (const [what, plant, entries, dims] of planted) {
        const dir = `${root}/m${k++}`;
        await Deno.mkdir(dir);
        await plant(dir);
        await Deno.writeFile(`${dir}/model.onnx`, withExternal(entries, dims, DataType.INT32));
        await check(
          `register, ${what}`,
          await post({
            body: JSON.stringify({ name: what, path: `${dir}/model.onnx` }),
            headers: { "Content-Type": "application/json" },
          }),
        );
      }
      // A FIFO or device as the model file itself.
      await mkfifo(`${root}/fifo.onnx`);
      for (const path of [`${root}/fifo.onnx`, "/dev/zero", secret, `${root}/../none.onnx`]) {
        await check(
          `register ${path}`,
          await post({
            body: JSON.stringify({ name: "x", path }),
            headers: { "Content-Type": "application/json" },
          }),
        );
      }
      // Outside the roots, an existing and a missing file answer alike.
      const a = await post({
        body: JSON.stringify({ name: "x", path: secret }),
        headers: { "Content-Type": "application/json" },
      });
      const b = await post({
        body: JSON.stringify({ name: "x", path: `${outside}/missing.onnx` }),
        headers: { "Content-Type": "application/json" },
      });
      assertEquals(a.status, b.status);
      assertEquals(
        (await a.json()).error.message.replace(secret, "P"),
        (await b.json()).error.message.replace(`${outside}/missing.onnx`, "P"),
      );

      const list = (await (await app.request("/models")).json()).models;
      assertEquals(list.length, 0, "nothing was registered");
      const grown = peak - rss0;
      console.log(
        `RSS: ${(rss0 / 2 ** 20).toFixed(0)} MiB before, peak +${(grown / 2 ** 20).toFixed(0)} MiB`,
      );
      assert(grown < RSS_BOUND, `RSS grew by ${grown} bytes (bound ${RSS_BOUND})`);

      // The good case still works: the fixture with one tensor moved to a file beside it.
      const dir = `${root}/good`;
      await Deno.mkdir(dir);
      await Deno.writeFile(`${dir}/w.bin`, new Uint8Array(64).fill(7));
      await Deno.writeFile(
        `${dir}/model.onnx`,
        withExternal({ location: "w.bin", offset: "0", length: "64" }, [16]),
      );
      const ok = await post({
        body: JSON.stringify({ name: "good", path: `${dir}/model.onnx` }),
        headers: { "Content-Type": "application/json" },
      });
      assertEquals(ok.status, 201, await ok.clone().text());
      const id = (await ok.json()).id;
      assertEquals((await app.request(`/models/${id}/hooks`)).status, 200);
    } finally {
      await database.close();
      for (const d of [dataDir, root, outside]) await Deno.remove(d, { recursive: true });
    }
  },
});
