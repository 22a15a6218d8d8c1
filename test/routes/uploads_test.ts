// spoolMultipart: the parts come back byte-exact whatever the chunking (down to one byte a read),
// including file bytes that look like the start of a boundary; a body over the limit is a 413.
import { assertEquals, assertRejects } from "@std/assert";
import { ApiError } from "../../routes/errors.ts";
import { spoolMultipart } from "../../routes/uploads.ts";
import { freshRng } from "../util/rand.ts";

const enc = new TextEncoder();

function body(boundary: string, file: Uint8Array): Uint8Array {
  const parts = [
    enc.encode(`preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name=title\r\n\r\n`),
    enc.encode(`a b # c\r\n--${boundary}\r\n`),
    enc.encode(
      `Content-Disposition: form-data; name="model"; filename="m.onnx"\r\n` +
        `Content-Type: application/octet-stream\r\n\r\n`,
    ),
    file,
    enc.encode(`\r\n--${boundary}--\r\nepilogue`),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function request(bytes: Uint8Array, boundary: string, chunk: number): Request {
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i >= bytes.length) return c.close();
      c.enqueue(bytes.slice(i, i + chunk));
      i += chunk;
    },
  });
  return new Request("http://x/", {
    method: "POST",
    body: stream,
    headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
  });
}

Deno.test("spoolMultipart: byte-exact parts for any chunking; 413 past the limit", async () => {
  const rng = freshRng("multipart");
  const boundary = "----b0und";
  // File bytes full of CR, LF and dashes, and a near-miss of the delimiter.
  const alphabet = enc.encode("\r\n-b0und");
  const file = Uint8Array.from({ length: 3000 }, () => alphabet[rng.int(alphabet.length)]);
  file.set(enc.encode(`\r\n--${boundary.slice(0, -1)}X`), 1000);
  const bytes = body(boundary, file);
  const dir = await Deno.makeTempDir();
  try {
    for (const chunk of [1, 2, 7, 64, 1 + rng.int(500), bytes.length]) {
      const sub = await Deno.makeTempDir({ dir });
      const out = await spoolMultipart(request(bytes, boundary, chunk), sub, 1 << 20);
      assertEquals(out.fields.get("title"), "a b # c", `chunk ${chunk}`);
      const f = out.files.get("model")!;
      assertEquals(f.filename, "m.onnx");
      assertEquals(await Deno.readFile(f.path), file, `chunk ${chunk}`);
    }
    const sub = await Deno.makeTempDir({ dir });
    const e = await assertRejects(
      () => spoolMultipart(request(bytes, boundary, 256), sub, 1000),
      ApiError,
    );
    assertEquals((e as ApiError).status, 413);
    const cut = await assertRejects(
      async () =>
        spoolMultipart(
          request(bytes.slice(0, 2000), boundary, 256),
          await Deno.makeTempDir({ dir }),
          1 << 20,
        ),
      ApiError,
    );
    assertEquals((cut as ApiError).status, 400);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
