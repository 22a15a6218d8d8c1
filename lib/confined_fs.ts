// The one way the service opens a file it was told about (registered models and their external
// data, data sets, tokenizers, uploads): the real path (symlinks followed) must lie inside an
// allowed directory, it must be a regular file (checked with stat before any open, because opening
// a FIFO blocks a thread and a character device never ends), and it is read only up to a size the
// caller names. Errors never say whether a file outside the allowed directories exists and never
// show a resolved absolute path: they name the path as the caller gave it, or a label.
import { isAbsolute, relative, resolve, sep } from "node:path";

export type FileAccessCode =
  | "file_unavailable"
  | "not_a_file"
  | "file_too_large"
  | "paths_disabled";

export class FileAccessError extends Error {
  override name = "FileAccessError";
  constructor(readonly code: FileAccessCode, message: string) {
    super(message);
  }
}

/** Where files may be read from: each directory and everything below it. */
export interface FileAccess {
  roots: string[];
  /** How errors name the allowed directories (default: the SPLICE_ROOTS wording). */
  where?: string;
}

export interface ReadLimits {
  /** Refuse files larger than this many bytes. */
  maxBytes: number;
  /** How errors name the file (default: the path as given). */
  label?: string;
}

/** Directories the service itself ships files in (the embedded model). */
export const BUILTIN_ROOTS = [new URL("../fixtures/", import.meta.url).pathname];

/**
 * What the service may read: the configured roots, its own data dir (uploads, trained SAEs) and
 * the built-in fixtures.
 */
export function serviceAccess(config: { roots: string[]; dataDir: string }): FileAccess {
  return { roots: [...config.roots, config.dataDir, ...BUILTIN_ROOTS] };
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

async function realDirs(roots: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of roots) {
    out.push(resolve(r));
    const real = await Deno.realPath(r).catch(() => null);
    if (real) out.push(real);
  }
  return out;
}

function unavailable(label: string, where = "the allowed roots (SPLICE_ROOTS)"): FileAccessError {
  // One message whether the file is missing, unreadable or outside the roots: anything more would
  // let a caller probe the host's file system.
  return new FileAccessError(
    "file_unavailable",
    `"${label}" not found: there is no readable file by that name inside ${where}`,
  );
}

/**
 * The real path of `path` if it is a regular file inside `access.roots`. Lexically outside paths
 * are refused before the file system is touched at all.
 */
export async function resolveConfined(
  path: string,
  access: FileAccess,
  label = path,
): Promise<{ real: string; size: number }> {
  if (!access.roots.length) {
    throw new FileAccessError(
      "paths_disabled",
      "reading files by path is off: start the service with SPLICE_ROOTS",
    );
  }
  const no = () => unavailable(label, access.where);
  if (path.includes("\0")) throw no();
  const dirs = await realDirs(access.roots);
  if (!dirs.some((d) => inside(resolve(path), d))) throw no();
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch {
    throw no();
  }
  if (!dirs.some((d) => inside(real, d))) throw no();
  return { real, size: await regularSize(real, label) };
}

async function regularSize(real: string, label: string): Promise<number> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(real);
  } catch {
    throw unavailable(label);
  }
  if (!st.isFile) {
    throw new FileAccessError(
      "not_a_file",
      `"${label}" is not a regular file (directories, FIFOs, devices and sockets are refused)`,
    );
  }
  return st.size;
}

function tooLarge(label: string, size: number, max: number): FileAccessError {
  return new FileAccessError(
    "file_too_large",
    `"${label}" has ${size} bytes, more than the ${max} allowed here`,
  );
}

/**
 * `rel` resolved inside `baseDir` (a relative path without `..`, not leaving `baseDir` through a
 * symlink either) as the real path of a regular file, with its size.
 */
export async function resolveInside(
  baseDir: string,
  rel: string,
  label = rel,
  where = "its folder",
): Promise<{ real: string; size: number }> {
  const parts = rel.split(/[/\\]/);
  if (!rel || rel.includes("\0") || isAbsolute(rel) || parts.includes("..")) {
    throw new FileAccessError(
      "file_unavailable",
      `"${label}" must be a relative path inside ${where} (no "..", not absolute)`,
    );
  }
  return await resolveConfined(
    resolve(baseDir, rel),
    { roots: [baseDir], where },
    label,
  );
}

/** Opens a confined regular file for reading; the caller closes it. */
export async function openConfined(
  path: string,
  access: FileAccess,
  limits: ReadLimits,
): Promise<{ file: Deno.FsFile; size: number; real: string }> {
  const label = limits.label ?? path;
  const { real, size } = await resolveConfined(path, access, label);
  if (size > limits.maxBytes) throw tooLarge(label, size, limits.maxBytes);
  return { file: await Deno.open(real, { read: true }), size, real };
}

/** Reads `n` bytes at `offset` (or fewer at the end of the file). */
export async function readAt(file: Deno.FsFile, offset: number, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < n) {
    const r = await file.read(out.subarray(got));
    if (r === null) break;
    got += r;
  }
  return got === n ? out : out.subarray(0, got);
}

/** The whole of a confined regular file, at most `limits.maxBytes` even if it grows meanwhile. */
export async function readConfined(
  path: string,
  access: FileAccess,
  limits: ReadLimits,
): Promise<Uint8Array> {
  const label = limits.label ?? path;
  const { file, size } = await openConfined(path, access, limits);
  try {
    const bytes = await readAt(file, 0, size);
    if (bytes.length < size) {
      throw new FileAccessError("file_unavailable", `"${label}" changed while it was read`);
    }
    return bytes;
  } finally {
    file.close();
  }
}

export async function readTextConfined(
  path: string,
  access: FileAccess,
  limits: ReadLimits,
): Promise<string> {
  return new TextDecoder().decode(await readConfined(path, access, limits));
}
