// What the scripts share as clients of the service: start it as a child process, call its JSON
// API, follow a job's SSE stream to the end.
export const ROOT = new URL("../", import.meta.url).pathname;

export async function startService(dataDir: string, port = 0) {
  const l = Deno.listen({ hostname: "127.0.0.1", port });
  const chosen = (l.addr as Deno.NetAddr).port;
  l.close();
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "--port", String(chosen), "--data-dir", dataDir],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const url = `http://127.0.0.1:${chosen}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return { proc, url };
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the service did not answer /health within 2 minutes");
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
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", result: R | null = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = Object.fromEntries(
        block.split("\n").filter((l) => !l.startsWith(":") && l.includes(":")).map((
          l,
        ) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]),
      );
      if (!ev.data) continue;
      const data = JSON.parse(ev.data);
      onEvent(ev.event, data);
      if (ev.event === "result") result = data;
      else if (ev.event === "error") throw new Error(`${label} failed: ${data.message}`);
      else if (ev.event === "state" && data.state === "cancelled") {
        throw new Error(`${label} was cancelled`);
      }
    }
  }
  if (!result) throw new Error(`${label}: the stream ended without a result`);
  return result;
}
