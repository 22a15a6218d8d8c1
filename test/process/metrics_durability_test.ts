// SIGKILL the service the moment a checkpoint folder appears; after a restart the job finishes
// with every metric row 1..N exactly once and an SSE history that reports no step twice.
import { assert, assertEquals } from "@std/assert";
import { freePort, spawnService, waitHealthy } from "../../scripts/_client.ts";
import { readSse } from "../util/sse.ts";

const start = (port: number, dataDir: string) =>
  spawnService(port, dataDir, { SPLICE_LEASE_MS: "1000" });

/** Returns as soon as `dir` holds a step-* folder, polling as fast as the file system allows. */
async function firstCheckpoint(dir: string, deadline: number): Promise<string> {
  while (Date.now() < deadline) {
    try {
      for (const e of Deno.readDirSync(dir)) if (e.name.startsWith("step-")) return e.name;
    } catch { /* not created yet */ }
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`no checkpoint appeared in ${dir}`);
}

Deno.test({
  name: "SIGKILL right after a checkpoint appears: no metric row lost, no step repeated in SSE",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const port = freePort(), url = `http://127.0.0.1:${port}`;
    let proc = start(port, dataDir);
    try {
      await waitHealthy(url);
      const steps = 48; // 48 × 2 × 16 = 1,536 tokens: half MSE pre-training, half fine-tune
      const res = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "kl_mse",
          tokens: steps * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          metrics_every: 1,
          checkpoint_every: 8,
          init: { kind: "topk", d_sae: 64, k: 4 },
          eval_sequences: 0,
          finetune_fraction: 0.5,
          // Rates at which so short a run ends with a usable SAE (the job checks its FVU).
          pretrain_lr: 0.01,
          lr: 1e-3,
        }),
      });
      assertEquals(res.status, 202);
      const job = await res.json();
      const ckdir = `${dataDir}/jobs/${job.id}/checkpoints/pretrain`;
      const seen = await firstCheckpoint(ckdir, Date.now() + 120_000);
      proc.kill("SIGKILL");
      await proc.status;
      const killedAt = Number(seen.slice("step-".length));
      assert(killedAt < steps, `killed mid-run (at ${seen})`);

      proc = start(port, dataDir);
      await waitHealthy(url);
      const events = await readSse(await fetch(`${url}/finetunes/${job.id}/events`));
      assertEquals(events.at(-1)!.data, { state: "succeeded" }, JSON.stringify(events.at(-2)));
      const running = events.filter((e) =>
        e.event === "state" && (e.data as { state: string }).state === "running"
      );
      assertEquals(running.length, 2, "the job ran in two processes");

      const rows = (await (await fetch(`${url}/finetunes/${job.id}/metrics`)).json()).metrics as {
        step: number;
      }[];
      assertEquals(rows.map((r) => r.step), Array.from({ length: steps }, (_, i) => i + 1));
      for (const type of ["metrics", "progress"]) {
        const reported = events.filter((e) => e.event === type).map((e) =>
          (e.data as { step: number }).step
        );
        assertEquals(reported, Array.from({ length: steps }, (_, i) => i + 1), `${type} events`);
      }
    } finally {
      try {
        proc.kill("SIGTERM");
      } catch { /* already exited */ }
      await proc.status;
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
