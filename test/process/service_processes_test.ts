// The service as separate processes: the stdlib Python notebook client against a live server, and
// two servers sharing one PostgreSQL job queue (FOR UPDATE SKIP LOCKED + leases).
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import postgres from "postgres";
import { havePython } from "../util/python.ts";

import { freePort, ROOT, spawnService, waitHealthy } from "../../scripts/_client.ts";
const SMALL = {
  tokens: 4 * 2 * 16,
  batch_size: 2,
  seq_len: 16,
  metrics_every: 1,
  checkpoint_every: 2,
  init: { kind: "topk", d_sae: 32, k: 4 },
  eval_sequences: 2,
  finetune_fraction: 0.5,
};

Deno.test({
  name: "examples/notebook_client.py starts a fine-tune and prints its streamed metrics",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    if (!(await havePython())) {
      return console.log("python3 is not installed: the notebook client was not run");
    }
    const dataDir = await Deno.makeTempDir();
    const port = freePort(), url = `http://127.0.0.1:${port}`;
    const proc = spawnService(port, dataDir);
    try {
      await waitHealthy(url);
      const out = await new Deno.Command("python3", {
        args: [
          `${ROOT}examples/notebook_client.py`,
          "--url",
          url,
          "--kind",
          "kl_mse",
          "--tokens",
          String(SMALL.tokens),
          "--config",
          JSON.stringify(SMALL),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, text + new TextDecoder().decode(out.stderr));
      assertStringIncludes(text, "started ");
      assertEquals(text.split("\n").filter((l) => l.startsWith("step=")).length, 4);
      assertStringIncludes(text, '"state": "succeeded"');
    } finally {
      proc.kill("SIGTERM");
      await proc.status;
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

const pgUrl = Deno.env.get("SPLICE_TEST_DATABASE_URL");

Deno.test({
  name: "two service processes share one PostgreSQL queue: each job runs once, both take jobs",
  ignore: !pgUrl,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const name = `splice_fleet_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
    const admin = postgres(pgUrl!, { onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const u = new URL(pgUrl!);
    u.pathname = `/${name}`;
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const ports = [freePort(), freePort()];
    const procs = ports.map((p, i) => spawnService(p, dirs[i], { DATABASE_URL: u.toString() }));
    try {
      const urls = ports.map((p) => `http://127.0.0.1:${p}`);
      await Promise.all(urls.map(waitHealthy));
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`${urls[i % 2]}/finetunes`, {
          method: "POST",
          body: JSON.stringify({ ...SMALL, kind: "mse", seed: i }),
        });
        ids.push((await r.json()).id);
      }
      const owners = new Set<string>();
      for (const id of ids) {
        const text = await (await fetch(`${urls[0]}/finetunes/${id}/events`)).text();
        assertStringIncludes(text, '"state":"succeeded"');
        const running = [
          ...text.matchAll(
            /"state":"running"[^}]*"owner":"([^"]+)"|"owner":"([^"]+)"[^}]*"state":"running"/g,
          ),
        ];
        assertEquals(running.length, 1, `job ${id} ran once`);
        owners.add(running[0][1] ?? running[0][2]);
      }
      assert(owners.size === 2, `both processes took jobs: ${[...owners]}`);
    } finally {
      for (const p of procs) {
        try {
          p.kill("SIGTERM");
        } catch { /* already exited */ }
      }
      for (const p of procs) await p.status;
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
