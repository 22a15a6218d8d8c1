// GET …/events as Server-Sent Events: the job's history after Last-Event-ID (header, or the
// `lastEventId` query parameter for clients that cannot set headers), then live events until the
// job ends, with keep-alive comments so proxies and notebooks do not time the stream out.
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { EventHub } from "../jobs/events.ts";

export function lastEventId(c: Context): number {
  const raw = c.req.header("Last-Event-ID") ?? c.req.query("lastEventId") ?? "0";
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

export function streamJobEvents(
  c: Context,
  hub: EventHub,
  jobId: string,
  keepAliveMs = 15_000,
): Response {
  return streamSSE(c, async (stream) => {
    const ctl = new AbortController();
    stream.onAbort(() => ctl.abort());
    const keepAlive = setInterval(() => {
      stream.write(": keep-alive\n\n").catch(() => ctl.abort());
    }, keepAliveMs);
    try {
      for await (const e of hub.subscribe(jobId, lastEventId(c), ctl.signal)) {
        await stream.writeSSE({ id: String(e.id), event: e.type, data: JSON.stringify(e.data) });
        if (stream.aborted) break;
      }
    } finally {
      clearInterval(keepAlive);
    }
  });
}
