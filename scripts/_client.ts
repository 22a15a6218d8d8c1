// What the scripts share as clients of the service: start it as a child process, call its JSON
// API, follow a job's SSE stream to the end.
import { readSseStream } from "../lib/sse.js";

export const ROOT = new URL("../", import.meta.url).pathname;

/** A loopback port free at the time of the call. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/**
 * Runs main.ts on `port` with `dataDir`. Its output is discarded: a pipe nobody reads would fill
 * and stall the service once it has logged enough.
 */
export function spawnService(
  port: number,
  dataDir: string,
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "--port", String(port), "--data-dir", dataDir],
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Waits until `url` answers /health (2 minutes at most). */
export async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${url}/health`);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url}: no /health within 2 minutes`);
}

export async function startService(dataDir: string, port = 0) {
  const chosen = port || freePort();
  const proc = spawnService(chosen, dataDir);
  const url = `http://127.0.0.1:${chosen}`;
  await waitHealthy(url);
  return { proc, url };
}

export async function api<T>(url: string, init?: RequestInit): Promise<T> {
  const r = await fetch(url, init);
  const body = await r.json();
  if (!r.ok) {
    throw new Error(`${init?.method ?? "GET"} ${url}: ${r.status} ${JSON.stringify(body.error)}`);
  }
  return body as T;
}

/** Reads an SSE stream to its end, calling onEvent per event; returns the `result` event's data. */
export async function followEvents<R>(
  eventsUrl: string,
  label: string,
  onEvent: (event: string, data: Record<string, unknown>) => void,
): Promise<R> {
  const res = await fetch(eventsUrl);
  if (!res.ok || !res.body) throw new Error(`${label}: GET ${eventsUrl} answered ${res.status}`);
  let result: R | null = null;
  for await (const ev of readSseStream(res.body)) {
    if (!ev.data) continue;
    const data = JSON.parse(ev.data);
    onEvent(ev.event ?? "", data);
    if (ev.event === "result") result = data;
    else if (ev.event === "error") throw new Error(`${label} failed: ${data.message}`);
    else if (ev.event === "state" && data.state === "cancelled") {
      throw new Error(`${label} was cancelled`);
    }
  }
  if (!result) throw new Error(`${label}: the stream ended without a result`);
  return result;
}
