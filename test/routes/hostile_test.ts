// 200 malformed or hostile requests over real HTTP: each gets a 4xx with the error shape and a
// message, and the server keeps serving.
import { assert, assertEquals } from "@std/assert";
import { Config } from "../../config.ts";
import { openDatabase } from "../../db/client.ts";
import { DbEventStore, DbJobStore } from "../../jobs/db_store.ts";
import { models } from "../../db/schema.ts";
import { EventHub } from "../../jobs/events.ts";
import { JobRunner } from "../../jobs/runner.ts";
import { EMBEDDED_MODEL } from "../../main.ts";
import { createApp } from "../../routes/app.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng } from "../util/rand.ts";

const TOKEN = "test-token-123";

Deno.test({
  name: "200 malformed or hostile requests each get a 4xx with a message; the server keeps serving",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const rng = freshRng("hostile");
    const root = await Deno.makeTempDir();
    const outside = await Deno.makeTempFile({ suffix: ".onnx" });
    await Deno.writeTextFile(`${root}/junk.onnx`, "not a model");
    const database = await openDatabase({ dataDir: "memory://" });
    await database.db.insert(models).values({ ...EMBEDDED_MODEL, builtin: true });
    const events = new EventHub(new DbEventStore(database.db));
    const runner = new JobRunner(new DbJobStore(database.db), events);
    runner.register("finetune", () => Promise.resolve(null)); // never started: the runner is idle
    const app = createApp({
      config: Config.parse({ token: TOKEN, roots: [root], maxBodyBytes: 64 * 1024, dataDir: root }),
      gpu: await testGpu(),
      database,
      runner,
      events,
      startedAt: performance.now(),
    });
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
    const url = `http://127.0.0.1:${server.addr.port}`;
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const json = (body: string) => ({
      method: "POST",
      body,
      headers: { ...auth, "Content-Type": "application/json" },
    });
    const cases: [string, string, RequestInit][] = [
      ["bad JSON", "/finetunes", json("{kind: mse")],
      ["JSON array", "/finetunes", json("[1,2,3]")],
      ["JSON string", "/finetunes", json('"mse"')],
      ["wrong type", "/finetunes", json('{"kind": 3}')],
      ["unknown kind", "/finetunes", json('{"kind": "dpo"}')],
      ["negative lr", "/finetunes", json('{"kind": "mse", "lr": -1}')],
      ["lr as string", "/finetunes", json('{"kind": "mse", "lr": "0.1"}')],
      ["huge batch", "/finetunes", json('{"kind": "mse", "batch_size": 1e12}')],
      ["NaN-ish", "/finetunes", json('{"kind": "mse", "tokens": 1e400}')],
      ["unknown field", "/finetunes", json('{"kind": "mse", "rm_rf": true}')],
      ["prototype pollution", "/finetunes", json('{"kind": "mse", "__proto__": {"admin": true}}')],
      ["unknown model", "/finetunes", json('{"kind": "mse", "model": "../../etc/passwd"}')],
      ["unknown SAE", "/finetunes", json('{"kind": "mse", "sae": "nope"}')],
      ["seq beyond context", "/finetunes", json('{"kind": "mse", "seq_len": 4096}')],
      ["oversize body", "/finetunes", json(`{"kind": "mse", "pad": "${"x".repeat(100_000)}"}`)],
      ["no token", "/finetunes", { method: "POST", body: '{"kind": "mse"}' }],
      ["wrong token", "/models", { headers: { Authorization: "Bearer nope" } }],
      ["malformed auth", "/models", { headers: { Authorization: "Basic abc" } }],
      ["unknown job", "/finetunes/00000000-0000-0000-0000-000000000000", { headers: auth }],
      ["traversal id", "/finetunes/..%2F..%2Fetc%2Fpasswd", { headers: auth }],
      ["unknown job events", "/finetunes/nope/events", { headers: auth }],
      ["unknown job cancel", "/finetunes/nope/cancel", { method: "POST", headers: auth }],
      ["unknown SAE", "/saes/nope", { headers: auth }],
      ["unknown SAE file", "/saes/nope/cfg.json", { headers: auth }],
      ["delete unknown SAE", "/saes/nope", { method: "DELETE", headers: auth }],
      ["SAE upload not multipart", "/saes", json("{}")],
      ["SAE upload missing file", "/saes", { method: "POST", body: new FormData(), headers: auth }],
      ["unknown model", "/models/nope", { headers: auth }],
      ["model outside roots", "/models", json(JSON.stringify({ name: "x", path: outside }))],
      [
        "model traversal",
        "/models",
        json(JSON.stringify({ name: "x", path: `${root}/../../../etc/passwd` })),
      ],
      ["model missing", "/models", json(JSON.stringify({ name: "x", path: `${root}/none.onnx` }))],
      ["model not ONNX", "/models", json(JSON.stringify({ name: "x", path: `${root}/junk.onnx` }))],
      ["experiment without arms", "/experiments", json('{"sae": "x"}')],
      ["experiment unknown arm", "/experiments", json('{"sae": "x", "arms": [{"type": "rm"}]}')],
      ["experiment unknown SAE", "/experiments", json('{"sae": "x", "arms": [{"type": "mse"}]}')],
      [
        "experiment huge sweep",
        "/experiments",
        json(JSON.stringify({
          sae: "x",
          sweep: { parameter: "rank", values: Array(100).fill(1), arm: { type: "lm_lora" } },
        })),
      ],
      ["unknown experiment", "/experiments/nope", { headers: auth }],
      ["unknown plot", "/experiments/nope/plots/x.svg", { headers: auth }],
      ["unknown experiment events", "/experiments/nope/events", { headers: auth }],
      [
        "data set outside roots",
        "/datasets",
        json(JSON.stringify({ name: "x", path: outside, format: "text" })),
      ],
      [
        "data set bad format",
        "/datasets",
        json(JSON.stringify({ name: "x", path: `${root}/junk.onnx`, format: "csv" })),
      ],
      [
        "data set not JSONL",
        "/datasets",
        json(JSON.stringify({ name: "x", path: `${root}/junk.onnx`, format: "jsonl" })),
      ],
      ["unknown data set", "/datasets/nope", { headers: auth }],
      ["model upload junk", "/models", { method: "POST", body: junkModel(), headers: auth }],
      [
        "skip covers the sequence",
        "/finetunes",
        json('{"kind": "mse", "seq_len": 16, "skip_first_positions": 16}'),
      ],
      ["unknown UI file", "/ui/secrets.txt", {}],
      ["unknown route", "/admin", { headers: auth }],
      ["wrong method", "/health", { method: "DELETE", headers: auth }],
    ];
    const bad = new FormData();
    bad.append("cfg.json", new Blob(["{not json"]), "cfg.json");
    bad.append(
      "sae_weights.safetensors",
      new Blob([new Uint8Array([1, 2, 3])]),
      "sae_weights.safetensors",
    );
    cases.push(["SAE upload garbage", "/saes", { method: "POST", body: bad, headers: auth }]);
    // Fill to 200 with random variations: junk bodies, junk ids, junk tokens.
    const junk = () =>
      Array.from({ length: 1 + rng.int(40) }, () => String.fromCharCode(33 + rng.int(90))).join("");
    while (cases.length < 200) {
      const r = rng.int(4);
      if (r === 0) cases.push(["random body", "/finetunes", json(junk())]);
      else if (r === 1) {
        cases.push(["random id", `/finetunes/${encodeURIComponent(junk())}`, { headers: auth }]);
      } else if (r === 2) {
        cases.push(["random token", "/saes", { headers: { Authorization: `Bearer ${junk()}` } }]);
      } else {cases.push([
          "random field",
          "/finetunes",
          json(JSON.stringify({ kind: "mse", [junk()]: junk() })),
        ]);}
    }
    try {
      const statuses = new Map<number, number>();
      for (const [what, path, init] of cases) {
        const r = await fetch(`${url}${path}`, init);
        const text = await r.text();
        assert(r.status >= 400 && r.status < 500, `${what}: ${r.status} ${text.slice(0, 200)}`);
        const body = JSON.parse(text);
        assert(
          typeof body.error?.message === "string" && body.error.message.length > 0,
          `${what}: ${text}`,
        );
        assert(typeof body.error?.code === "string", `${what}: no code`);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
      console.log(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
      assertEquals((await fetch(`${url}/health`)).status, 200);
      assertEquals((await fetch(`${url}/models`, { headers: auth })).status, 200);
      // Nothing but /health answers without the token; every 401 says how to authenticate.
      for (const path of ["/", "/ui/app.js", "/openapi.json", "/docs"]) {
        const r = await fetch(`${url}${path}`);
        assertEquals(r.status, 401, path);
        assertEquals(r.headers.get("www-authenticate"), 'Bearer realm="splice"', path);
        assertEquals((await r.json()).error.code, "unauthorized", path);
      }
      // Outside the roots, an existing and a missing file get the same status and message.
      const reg = (path: string) =>
        fetch(`${url}/models`, json(JSON.stringify({ name: "x", path })))
          .then(async (r) => [r.status, (await r.json()).error.message.replace(path, "P")]);
      assertEquals(await reg(outside), await reg(`${outside}.missing`));
    } finally {
      await server.shutdown();
      await database.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(outside);
    }
  },
});

function junkModel(): FormData {
  const f = new FormData();
  f.append("model", new Blob([new Uint8Array([0, 1, 2, 3])]), "junk.onnx");
  return f;
}
