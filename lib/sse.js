// The client side of the service's Server-Sent Events, shared by the live page (served to the
// browser as /ui/sse.js, as written: plain JavaScript with JSDoc types), the scripts and the tests.

/**
 * One event's fields as sent; `data` lines are joined with "\n" as the SSE format says.
 * @typedef {{ id?: string, event?: string, data?: string }} SseMessage
 */

/**
 * Fields of one block (the text between blank lines); comment lines (":…") are skipped.
 * @param {string} block
 * @returns {SseMessage}
 */
export function parseSseBlock(block) {
  /** @type {Record<string, string>} */
  const fields = {};
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const name = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    fields[name] = name === "data" && name in fields ? `${fields[name]}\n${value}` : value;
  }
  return { id: fields.id, event: fields.event, data: fields.data };
}

/**
 * Each event of a stream as its blocks complete, whatever the chunk boundaries.
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<SseMessage>}
 */
export async function* readSseStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.trim()) yield parseSseBlock(block);
    }
  }
  if (buf.trim()) yield parseSseBlock(buf);
}
