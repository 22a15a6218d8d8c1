import { assertEquals, assertRejects } from "@std/assert";
import { followEvents } from "../../scripts/_client.ts";

/** Serves `text` as an SSE stream in pieces of `chunk` bytes, so blocks straddle reads. */
async function withStream<T>(text: string, chunk: number, f: (url: string) => Promise<T>) {
  const bytes = new TextEncoder().encode(text);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        for (let i = 0; i < bytes.length; i += chunk) {
          c.enqueue(bytes.slice(i, i + chunk));
          await new Promise((r) => setTimeout(r, 0));
        }
        c.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  try {
    return await f(`http://127.0.0.1:${server.addr.port}/events`);
  } finally {
    await server.shutdown();
  }
}

const block = (id: number, event: string, data: unknown) =>
  `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

Deno.test("followEvents: every event reaches onEvent in order and the result is returned", async () => {
  const text = ": open\n\n" + block(1, "state", { state: "running" }) +
    block(2, "metrics", { step: 1, loss: 0.5 }) + block(3, "result", { ce: 1.25 }) +
    block(4, "state", { state: "succeeded" });
  for (const chunk of [1, 7, 1000]) {
    const seen: string[] = [];
    const result = await withStream(
      text,
      chunk,
      (url) => followEvents<{ ce: number }>(url, "job", (e) => seen.push(e)),
    );
    assertEquals(result, { ce: 1.25 });
    assertEquals(seen, ["state", "metrics", "result", "state"]);
  }
});

Deno.test("followEvents: an error event, a cancel and a stream without a result are errors", async () => {
  const none = () => {};
  await assertRejects(
    () =>
      withStream(block(1, "error", { message: "boom" }), 5, (u) => followEvents(u, "job", none)),
    Error,
    "job failed: boom",
  );
  await assertRejects(
    () =>
      withStream(
        block(1, "state", { state: "cancelled" }),
        5,
        (u) => followEvents(u, "job", none),
      ),
    Error,
    "job was cancelled",
  );
  await assertRejects(
    () => withStream(block(1, "metrics", { step: 1 }), 5, (u) => followEvents(u, "job", none)),
    Error,
    "the stream ended without a result",
  );
});
