// Multipart uploads streamed to files in a folder of the data dir: memory per request stays at a
// chunk plus a delimiter whatever the file sizes, the body is cut off at a byte limit while it
// arrives, and a gate caps how many uploads run at once (more are refused, not queued, so memory
// and disk use stay bounded under load).
import { ApiError } from "./errors.ts";

export interface SpooledFile {
  /** Where the part's bytes were written (inside the folder given to spoolMultipart). */
  path: string;
  size: number;
  filename: string;
}

export interface Spooled {
  fields: Map<string, string>;
  files: Map<string, SpooledFile>;
}

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_FIELD_BYTES = 64 * 1024;
const MAX_PARTS = 16;

/** Caps concurrent uploads; past the cap a request is a 429 at once. */
export class UploadGate {
  #active = 0;
  constructor(readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.max) {
      throw new ApiError(
        429,
        "too_many_uploads",
        `${this.max} uploads are already in progress; retry when one has finished`,
      );
    }
    this.#active++;
    try {
      return await fn();
    } finally {
      this.#active--;
    }
  }
}

function bad(message: string): ApiError {
  return new ApiError(400, "invalid_upload", message);
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  for (let i = hay.indexOf(first, from); i >= 0 && i + needle.length <= hay.length;) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
    i = hay.indexOf(first, i + 1);
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function boundaryOf(contentType: string): string {
  const m = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (!contentType.toLowerCase().startsWith("multipart/form-data") || !m) {
    throw bad("expected a multipart/form-data body with a boundary");
  }
  return m[1] ?? m[2];
}

function partHeaders(text: string): { name: string; filename?: string } {
  const disp = text.split("\r\n").find((l) => /^content-disposition:/i.test(l));
  // RFC 7578 quotes both; some clients do not.
  const param = (key: string) => {
    const m = new RegExp(`;\\s*${key}=(?:"([^"]*)"|([^;\\s]+))`, "i").exec(disp ?? "");
    return m ? m[1] ?? m[2] : undefined;
  };
  const name = param("name");
  if (!disp || name === undefined) throw bad("a multipart part has no Content-Disposition name");
  const filename = param("filename");
  return { name, filename };
}

/**
 * Parses a multipart/form-data body as it streams in: file parts go to numbered files in `dir`
 * (which must exist), text fields are kept (up to 64 KiB each). More than `maxBytes` of body is a
 * 413.
 */
export async function spoolMultipart(
  req: Request,
  dir: string,
  maxBytes: number,
): Promise<Spooled> {
  const boundary = boundaryOf(req.headers.get("content-type") ?? "");
  if (Number(req.headers.get("content-length") ?? 0) > maxBytes) {
    throw new ApiError(413, "payload_too_large", `the body exceeds ${maxBytes} bytes`);
  }
  const enc = new TextEncoder();
  const delim = enc.encode(`\r\n--${boundary}`);
  const out: Spooled = { fields: new Map(), files: new Map() };
  if (!req.body) throw bad("the upload has no body");
  let state: "preamble" | "after" | "headers" | "body" | "done" = "preamble";
  // The body is read as if it began with CRLF, so the first boundary looks like every other one.
  let buf: Uint8Array = enc.encode("\r\n");
  let total = 0, parts = 0;
  let sink: { file: Deno.FsFile; rec: SpooledFile } | null = null;
  let field: { name: string; chunks: Uint8Array[]; size: number } | null = null;
  const write = async (bytes: Uint8Array) => {
    if (!bytes.length) return;
    if (sink) {
      for (let o = 0; o < bytes.length;) o += await sink.file.write(bytes.subarray(o));
      sink.rec.size += bytes.length;
    } else if (field) {
      field.size += bytes.length;
      if (field.size > MAX_FIELD_BYTES) {
        throw bad(`form field "${field.name}" is over ${MAX_FIELD_BYTES} bytes; send it as a file`);
      }
      field.chunks.push(bytes.slice());
    }
  };
  let partName = "";
  const endPart = () => {
    if (sink) {
      sink.file.close();
      out.files.set(partName, sink.rec);
      sink = null;
    } else if (field) {
      const b = new Uint8Array(field.size);
      let o = 0;
      for (const c of field.chunks) {
        b.set(c, o);
        o += c.length;
      }
      out.fields.set(field.name, new TextDecoder().decode(b));
      field = null;
    }
  };
  const reader = req.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        throw new ApiError(413, "payload_too_large", `the body exceeds ${maxBytes} bytes`);
      }
      buf = concat(buf, value);
      for (let progress = true; progress && state !== "done";) {
        progress = false;
        if (state === "preamble" || state === "body") {
          const i = indexOf(buf, delim);
          if (i < 0) {
            const keep = Math.min(buf.length, delim.length - 1);
            if (state === "body") await write(buf.subarray(0, buf.length - keep));
            buf = buf.slice(buf.length - keep);
          } else {
            if (state === "body") {
              await write(buf.subarray(0, i));
              endPart();
            }
            buf = buf.slice(i + delim.length);
            state = "after";
            progress = true;
          }
        } else if (state === "after" && buf.length >= 2) {
          if (buf[0] === 0x2d && buf[1] === 0x2d) state = "done";
          else if (buf[0] === 0x0d && buf[1] === 0x0a) {
            buf = buf.slice(2);
            state = "headers";
            progress = true;
          } else throw bad("malformed multipart boundary");
        } else if (state === "headers") {
          const i = indexOf(buf, enc.encode("\r\n\r\n"));
          if (i < 0) {
            if (buf.length > MAX_HEADER_BYTES) throw bad("a multipart part's headers are too long");
            continue;
          }
          const h = partHeaders(new TextDecoder().decode(buf.subarray(0, i)));
          buf = buf.slice(i + 4);
          if (++parts > MAX_PARTS) throw bad(`more than ${MAX_PARTS} multipart parts`);
          partName = h.name;
          if (h.filename !== undefined) {
            const path = `${dir}/part-${parts}`;
            sink = {
              file: await Deno.open(path, { write: true, createNew: true }),
              rec: { path, size: 0, filename: h.filename },
            };
          } else field = { name: h.name, chunks: [], size: 0 };
          state = "body";
          progress = true;
        }
      }
    }
    if (state !== "done") throw bad("the multipart body ended before its closing boundary");
    return out;
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  } finally {
    (sink as { file: Deno.FsFile } | null)?.file.close();
  }
}
