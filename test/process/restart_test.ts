// SIGKILL the service in the middle of a fine-tune, start it again on the same data directory:
// the job resumes from its last checkpoint and finishes, and no metrics row written before the
// last flush is lost.
import { assert, assertEquals } from "@std/assert";
import { readSse } from "../util/sse.ts";
import { freePort, spawnService, waitHealthy } from "../../scripts/_client.ts";

// A short lease, so the restarted process takes the killed one's job back quickly.
const start = (port: number, dataDir: string) =>
  spawnService(port, dataDir, { SPLICE_LEASE_MS: "1500" });

Deno.test({
  name:
    "SIGKILL during a fine-tune; after a restart the job resumes from its checkpoint and finishes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    let proc = start(port, dataDir);
    try {
      await waitHealthy(url);
      const steps = 12;
      const res = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "kl_mse",
          tokens: steps * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          metrics_every: 1,
          checkpoint_every: 2,
          init: { kind: "topk", d_sae: 64, k: 4 },
          eval_sequences: 0,
          finetune_fraction: 1,
        }),
      });
      const job = await res.json();
      // Read the stream until step 5 has been reported, then kill the process outright.
      const reader = (await fetch(`${url}/finetunes/${job.id}/events`)).body!
        .pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!/"step":5\b/.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended early:\n${text}`);
        text += value;
      }
      proc.kill("SIGKILL");
      await proc.status;
      await reader.cancel().catch(() => {});
      const ckpts = [...Deno.readDirSync(`${dataDir}/jobs/${job.id}/checkpoints/finetune`)].map((
        e,
      ) => e.name);
      assert(
        ckpts.some((n) => n.startsWith("step-")),
        `a checkpoint was written before the kill: ${ckpts}`,
      );

      proc = start(port, dataDir);
      await waitHealthy(url);
      const events = await readSse(await fetch(`${url}/finetunes/${job.id}/events`));
      assertEquals(
        events.at(-1)!.data,
        { state: "succeeded" },
        JSON.stringify(events.filter((e) => e.event === "error")),
      );
      assertEquals(
        events.map((e) => e.id),
        events.map((_, i) => i + 1),
        "one gap-free history across both processes",
      );
      const resumed = events.find((e) =>
        e.event === "state" && (e.data as { resumed?: boolean }).resumed
      );
      assert(resumed, "the second process took the job over as a resumed job");
      assert(
        events.some((e) =>
          e.event === "log" && /resumed at step [1-9]/.test(JSON.stringify(e.data))
        ),
      );
      const rows = (await (await fetch(`${url}/finetunes/${job.id}/metrics`)).json()).metrics;
      assertEquals(
        rows.map((r: { step: number }) => r.step),
        Array.from({ length: steps }, (_, i) => i + 1),
      );
    } finally {
      proc.kill("SIGTERM");
      await proc.status.catch(() => {});
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
