// SIGKILL the service in the middle of a fine-tune, start it again on the same data directory:
// the job resumes from its last checkpoint and finishes, and no metrics row written before the
// last flush is lost.
import { assert, assertEquals } from "@std/assert";
import { readSse } from "./util/sse.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function start(port: number, dataDir: string) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--port", String(port), "--data-dir", dataDir],
    env: { SPLICE_LEASE_MS: "1500" },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function healthy(url: string) {
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${url}/health`);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("no /health within 2 minutes");
}

Deno.test({
  name:
    "SIGKILL during a fine-tune; after a restart the job resumes from its checkpoint and finishes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const url = `http://127.0.0.1:${port}`;
    let proc = start(port, dataDir);
    try {
      await healthy(url);
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
      await healthy(url);
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
