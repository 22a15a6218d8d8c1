// Two service processes on one PostgreSQL: X accepts job J while busy, Y runs J and is SIGKILLed,
// X takes J over when Y's lease lapses and finishes it, with one gap-free event history.
import { assert, assertEquals, assertNotEquals } from "@std/assert";
import postgres from "postgres";
import { freePort, spawnService, waitHealthy } from "../../scripts/_client.ts";
import { readSse } from "../util/sse.ts";

const pgUrl = Deno.env.get("SPLICE_TEST_DATABASE_URL");

const TINY = {
  batch_size: 1,
  seq_len: 16,
  init: { kind: "topk", d_sae: 32, k: 4 },
  eval_sequences: 0,
  finetune_fraction: 1,
};

async function json(url: string, init?: RequestInit) {
  const r = await fetch(url, init);
  const body = await r.json();
  if (!r.ok) throw new Error(`${url}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function until<T>(what: string, f: () => Promise<T | null>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The owners of a job's "running" state events so far, in order, read from the database. */
async function owners(db: postgres.Sql, id: string): Promise<string[]> {
  const rows = await db`
    SELECT data FROM job_events WHERE job_id = ${id} AND type = 'state' ORDER BY seq`;
  return rows.map((r) => r.data as { state: string; owner?: string })
    .filter((d) => d.state === "running").map((d) => d.owner!);
}

Deno.test({
  name: "PostgreSQL fleet: X takes over the job of a SIGKILLed Y and finishes it",
  ignore: !pgUrl,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const name = `splice_takeover_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
    const admin = postgres(pgUrl!, { onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const u = new URL(pgUrl!);
    u.pathname = `/${name}`;
    const env = { DATABASE_URL: u.toString(), SPLICE_LEASE_MS: "4000" };
    const db = postgres(u.toString(), { onnotice: () => {} });
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const [px, py] = [freePort(), freePort()];
    const x = `http://127.0.0.1:${px}`, y = `http://127.0.0.1:${py}`;
    const procs: Deno.ChildProcess[] = [spawnService(px, dirs[0], env)];
    try {
      await waitHealthy(x);
      // X's one worker is kept busy by A (cancelled later), so the job X accepts goes to Y.
      const a = await json(`${x}/finetunes`, {
        method: "POST",
        body: JSON.stringify({ ...TINY, kind: "kl_mse", tokens: 16_384, metrics_every: 64 }),
      });
      const xOwner = await until("A to run on X", async () => (await owners(db, a.id))[0] ?? null);
      procs.push(spawnService(py, dirs[1], env));
      await waitHealthy(y);
      const j = await json(`${x}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          ...TINY,
          kind: "kl_mse",
          tokens: 16 * 16,
          // Half MSE pre-training, at rates at which so short a run ends with a usable SAE.
          finetune_fraction: 0.5,
          pretrain_lr: 0.01,
          lr: 1e-3,
          metrics_every: 1,
          checkpoint_every: 2,
        }),
      });
      await until("J's first checkpoint on Y", async () => {
        const m = (await json(`${x}/finetunes/${j.id}/metrics`)).metrics as unknown[];
        return m.length >= 2 ? true : null;
      });
      const yOwner = (await owners(db, j.id))[0];
      assertNotEquals(
        yOwner,
        xOwner,
        `Y, not X, ran J; A is ${JSON.stringify(await json(`${x}/finetunes/${a.id}`))}`,
      );
      procs[1].kill("SIGKILL");
      await procs[1].status;
      await json(`${x}/finetunes/${a.id}/cancel`, { method: "POST" });

      const events = await readSse(
        await fetch(`${x}/finetunes/${j.id}/events`, { signal: AbortSignal.timeout(180_000) }),
      );
      assertEquals(events.at(-1)!.data, { state: "succeeded" }, JSON.stringify(events.at(-2)));
      assertEquals(events.map((e) => e.id), events.map((_, i) => i + 1), "one gap-free history");
      const ran = events.filter((e) =>
        e.event === "state" && (e.data as { state: string }).state === "running"
      ).map((e) => (e.data as { owner: string }).owner);
      assertEquals(ran, [yOwner, xOwner], "Y ran J first, then X took it over");
      const health = await fetch(`${x}/health`);
      await health.body?.cancel();
      assert(health.ok, "X is still up");
      const steps = (await json(`${x}/finetunes/${j.id}/metrics`)).metrics.map((
        r: { step: number },
      ) => r.step);
      assertEquals(steps, Array.from({ length: 16 }, (_, i) => i + 1));
      const reported = events.filter((e) => e.event === "metrics").map((e) =>
        (e.data as { step: number }).step
      );
      assertEquals(reported, steps, "each step reported once across both processes");
    } finally {
      for (const p of procs) {
        try {
          p.kill("SIGTERM");
        } catch { /* already exited */ }
      }
      for (const p of procs) await p.status;
      await db.end();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
