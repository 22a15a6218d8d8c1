// lib/confined_fs.ts: only regular files inside the roots are read; FIFOs and devices are refused
// without being opened (an open of a FIFO would block this test until its timeout); sizes are
// bounded; outside the roots a missing and an existing file give the same error, which shows no
// resolved path.
import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  FileAccessError,
  openConfined,
  readConfined,
  resolveConfined,
  resolveInside,
} from "../../lib/confined_fs.ts";

async function mkfifo(path: string): Promise<void> {
  const r = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert(r.success, `mkfifo failed: ${new TextDecoder().decode(r.stderr)}`);
}

/** Fails instead of hanging when a call blocks (as opening a FIFO does). */
function within<T>(p: Promise<T>, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still blocked after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function refusal(p: Promise<unknown>): Promise<FileAccessError> {
  const e = await assertRejects(() => within(p), FileAccessError);
  return e as FileAccessError;
}

Deno.test("confined_fs: roots, symlinks, FIFOs, devices, sizes and uniform errors", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir());
  const outside = await Deno.realPath(await Deno.makeTempDir());
  try {
    const secret = `${outside}/secret.txt`;
    await Deno.writeTextFile(secret, "TOP-SECRET-CONTENT");
    await Deno.writeTextFile(`${root}/ok.txt`, "hello");
    await Deno.mkdir(`${root}/sub`);
    await Deno.writeTextFile(`${root}/sub/in.bin`, "inner");
    await Deno.symlink(secret, `${root}/link-out`);
    await Deno.symlink(`${root}/ok.txt`, `${root}/link-in`);
    await Deno.symlink("/dev/zero", `${root}/zero`);
    await mkfifo(`${root}/fifo`);
    const access = { roots: [root] };

    assertEquals(
      new TextDecoder().decode(await readConfined(`${root}/ok.txt`, access, { maxBytes: 100 })),
      "hello",
    );
    assertEquals((await resolveConfined(`${root}/link-in`, access)).real, `${root}/ok.txt`);

    // Outside: existing, missing, by "..", by symlink — one code, one message shape, no target.
    const existing = await refusal(readConfined(secret, access, { maxBytes: 100 }));
    const missing = await refusal(readConfined(`${outside}/nope.txt`, access, { maxBytes: 100 }));
    assertEquals(existing.code, "file_unavailable");
    assertEquals(missing.code, "file_unavailable");
    assertEquals(
      existing.message.replace(secret, "P"),
      missing.message.replace(`${outside}/nope.txt`, "P"),
    );
    const dots = await refusal(
      readConfined(`${root}/../${outside.split("/").pop()}/secret.txt`, access, { maxBytes: 100 }),
    );
    assertEquals(dots.code, "file_unavailable");
    const viaLink = await refusal(readConfined(`${root}/link-out`, access, { maxBytes: 100 }));
    assertEquals(viaLink.code, "file_unavailable");
    assert(!viaLink.message.includes(secret), viaLink.message);
    assert(!viaLink.message.includes("TOP-SECRET"), viaLink.message);
    assertEquals(
      (await refusal(readConfined(`${root}/ok.txt\0`, access, { maxBytes: 9 }))).code,
      "file_unavailable",
    );

    // Not regular files: refused before any open, so nothing blocks or streams forever.
    assertEquals(
      (await refusal(openConfined(`${root}/fifo`, access, { maxBytes: 9 }))).code,
      "not_a_file",
    );
    assertEquals((await refusal(readConfined(root, access, { maxBytes: 9 }))).code, "not_a_file");
    const dev = await refusal(readConfined("/dev/zero", { roots: ["/dev"] }, { maxBytes: 1e12 }));
    assertEquals(dev.code, "not_a_file");
    // A symlink to a device leaves the root, so it is simply unavailable.
    assertEquals(
      (await refusal(readConfined(`${root}/zero`, access, { maxBytes: 9 }))).code,
      "file_unavailable",
    );

    // Size bound, named with the label, not the path.
    const big = await refusal(readConfined(`${root}/ok.txt`, access, { maxBytes: 4, label: "x" }));
    assertEquals(big.code, "file_too_large");
    assert(big.message.includes('"x"') && !big.message.includes(root), big.message);

    // No roots configured: reading by path is off.
    assertEquals(
      (await refusal(resolveConfined(`${root}/ok.txt`, { roots: [] }))).code,
      "paths_disabled",
    );

    // resolveInside: relative paths inside the folder only.
    assertEquals((await resolveInside(root, "sub/in.bin")).size, 5);
    for (const rel of ["../x", "sub/../../x", secret, "", "link-out", "fifo", "zero"]) {
      const e = await refusal(resolveInside(root, rel));
      // Only what the caller wrote may show up, never a resolved target.
      assert(rel.includes(outside) || !e.message.includes(outside), `${rel}: ${e.message}`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
