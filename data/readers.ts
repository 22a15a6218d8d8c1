// Data set readers: each yields documents (text) or token arrays, lazily, so large files are not
// held whole. Plain text (whole file, lines, or blank-line paragraphs), JSONL with a text field,
// Parquet with a text column (hyparquet; one row group at a time), pre-tokenized uint16/uint32.
import { parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { basename, dirname } from "node:path";
import { FileAccessError, openConfined, readConfined } from "../lib/confined_fs.ts";
import { DataError } from "./sequences.ts";

/** Text is decoded into one JS string, whose length V8 caps near 2^29. */
const MAX_TEXT_BYTES = 512 * 2 ** 20;
const MAX_TOKEN_FILE_BYTES = 4 * 2 ** 30;

/**
 * A registered data file, opened only if it is still a regular file (a FIFO or device swapped in
 * after registration must not block or flood a worker) and not larger than `maxBytes`; errors
 * name the file, not its folder.
 */
async function readData(path: string, maxBytes: number): Promise<Uint8Array> {
  try {
    return await readConfined(path, { roots: [dirname(path)], where: "its folder" }, {
      maxBytes,
      label: basename(path),
    });
  } catch (e) {
    if (e instanceof FileAccessError) throw new DataError(`data file ${e.message}`);
    throw e;
  }
}

async function readText(path: string): Promise<string> {
  return new TextDecoder().decode(await readData(path, MAX_TEXT_BYTES));
}

export async function* textDocuments(
  path: string,
  split: "file" | "line" | "paragraph" = "file",
): AsyncGenerator<string> {
  const text = await readText(path);
  if (split === "file") {
    yield text;
    return;
  }
  for (const part of text.split(split === "line" ? /\r?\n/ : /\r?\n\s*\r?\n/)) {
    if (part.trim()) yield part;
  }
}

export async function* jsonlDocuments(path: string, field = "text"): AsyncGenerator<string> {
  const text = await readText(path);
  let lineNo = 0;
  for (const line of text.split(/\r?\n/)) {
    lineNo++;
    if (!line.trim()) continue;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new DataError(`${path}:${lineNo}: not JSON (${(e as Error).message})`);
    }
    const v = obj[field];
    if (typeof v !== "string") {
      throw new DataError(
        `${path}:${lineNo}: no string field "${field}" (fields: ${Object.keys(obj).join(", ")})`,
      );
    }
    yield v;
  }
}

function fileBuffer(file: Deno.FsFile, size: number) {
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const out = new Uint8Array(end - start);
      await file.seek(start, Deno.SeekMode.Start);
      let off = 0;
      while (off < out.length) {
        const n = await file.read(out.subarray(off));
        if (n === null) break;
        off += n;
      }
      return out.buffer;
    },
  };
}

export async function* parquetDocuments(path: string, column = "text"): AsyncGenerator<string> {
  let file: Deno.FsFile, size: number;
  try {
    ({ file, size } = await openConfined(path, { roots: [dirname(path)], where: "its folder" }, {
      maxBytes: Number.MAX_SAFE_INTEGER,
      label: basename(path),
    }));
  } catch (e) {
    if (e instanceof FileAccessError) throw new DataError(`data file ${e.message}`);
    throw e;
  }
  try {
    const buf = fileBuffer(file, size);
    const metadata = await parquetMetadataAsync(buf);
    const columns = metadata.schema.slice(1).map((s) => s.name);
    if (!columns.includes(column)) {
      throw new DataError(`${path}: no column "${column}" (columns: ${columns.join(", ")})`);
    }
    let row = 0;
    for (const group of metadata.row_groups) {
      const n = Number(group.num_rows);
      const rows = await parquetReadObjects({
        file: buf,
        metadata,
        columns: [column],
        rowStart: row,
        rowEnd: row + n,
      });
      for (const r of rows) {
        const v = r[column];
        if (typeof v === "string" && v) yield v;
      }
      row += n;
    }
  } finally {
    file.close();
  }
}

/** A file of little-endian uint16 or uint32 token ids, as one document. */
export async function tokenFile(path: string, width: 16 | 32): Promise<Uint16Array | Uint32Array> {
  const bytes = await readData(path, MAX_TOKEN_FILE_BYTES);
  const w = width / 8;
  if (bytes.byteLength % w) {
    throw new DataError(`${path}: ${bytes.byteLength} bytes is not a whole number of uint${width}`);
  }
  const copy = bytes.slice().buffer;
  return width === 16 ? new Uint16Array(copy) : new Uint32Array(copy);
}
