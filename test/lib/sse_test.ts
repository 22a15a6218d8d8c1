import { assertEquals } from "@std/assert";
import { parseSseBlock, readSseStream, type SseMessage } from "../../lib/sse.js";
import { freshRng } from "../util/rand.ts";

Deno.test("parseSseBlock: fields, comments skipped, data lines joined, one leading space dropped", () => {
  assertEquals(parseSseBlock(': keep-alive\nid: 7\nevent: metrics\ndata: {"a":1}'), {
    id: "7",
    event: "metrics",
    data: '{"a":1}',
  });
  assertEquals(parseSseBlock("data:x\ndata:  y"), {
    id: undefined,
    event: undefined,
    data: "x\n y",
  });
  assertEquals(parseSseBlock(": only a comment"), {
    id: undefined,
    event: undefined,
    data: undefined,
  });
});

function streamOf(text: string, cuts: number[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const edges = [0, ...cuts, bytes.length];
  return new ReadableStream({
    start(c) {
      for (let i = 1; i < edges.length; i++) c.enqueue(bytes.slice(edges[i - 1], edges[i]));
      c.close();
    },
  });
}

Deno.test("readSseStream: the same events whatever the chunk boundaries (multi-byte text too)", async () => {
  const rng = freshRng("sse chunks");
  const sent: SseMessage[] = [];
  let text = ": hello\n\n";
  for (let i = 0; i < 20; i++) {
    const data = JSON.stringify({ step: i, note: "λ→∞ ".repeat(rng.int(4)), x: rng.normal() });
    sent.push({ id: String(i + 1), event: i % 3 ? "metrics" : "state", data });
    text += `id: ${i + 1}\nevent: ${sent[i].event}\ndata: ${data}\n\n`;
  }
  const total = new TextEncoder().encode(text).length;
  for (let trial = 0; trial < 10; trial++) {
    const cuts = [...new Set(Array.from({ length: rng.int(40) }, () => 1 + rng.int(total - 1)))]
      .sort((a, b) => a - b);
    const got: SseMessage[] = [];
    for await (const m of readSseStream(streamOf(text, cuts))) if (m.data) got.push(m);
    assertEquals(got, sent, `cuts ${cuts}`);
  }
});

Deno.test("readSseStream: a last block without its blank line is still read", async () => {
  const got: SseMessage[] = [];
  for await (const m of readSseStream(streamOf("id: 1\ndata: 2\n\nid: 3\ndata: 4", [5]))) {
    got.push(m);
  }
  assertEquals(got.map((m) => m.data), ["2", "4"]);
});
