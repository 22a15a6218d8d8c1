import { assertEquals, assertRejects } from "@std/assert";
import { jsonlDocuments, parquetDocuments, textDocuments, tokenFile } from "../../data/readers.ts";
import { DataError } from "../../data/sequences.ts";
import { DOCS } from "../fixtures/data/make_parquet.ts";

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

Deno.test("readers: text by file/line/paragraph, JSONL field, token files; errors name the thing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.txt`, "one\ntwo\n\nthree\n");
    assertEquals(await all(textDocuments(`${dir}/a.txt`)), ["one\ntwo\n\nthree\n"]);
    assertEquals(await all(textDocuments(`${dir}/a.txt`, "line")), ["one", "two", "three"]);
    assertEquals(await all(textDocuments(`${dir}/a.txt`, "paragraph")), ["one\ntwo", "three\n"]);
    await Deno.writeTextFile(`${dir}/a.jsonl`, '{"text": "x", "n": 1}\n\n{"text": "y"}\n');
    assertEquals(await all(jsonlDocuments(`${dir}/a.jsonl`)), ["x", "y"]);
    await assertRejects(
      () => all(jsonlDocuments(`${dir}/a.jsonl`, "body")),
      DataError,
      'no string field "body" (fields: text, n)',
    );
    await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"text": "x"}\n{oops\n');
    await assertRejects(
      () => all(jsonlDocuments(`${dir}/bad.jsonl`)),
      DataError,
      "bad.jsonl:2: not JSON",
    );
    await assertRejects(() => all(textDocuments(`${dir}/missing.txt`)), DataError, "not found");
    await Deno.writeFile(`${dir}/t.u16`, new Uint8Array(new Uint16Array([1, 2, 65535]).buffer));
    assertEquals(Array.from(await tokenFile(`${dir}/t.u16`, 16)), [1, 2, 65535]);
    await Deno.writeFile(`${dir}/t.u32`, new Uint8Array(new Uint32Array([70000, 3]).buffer));
    assertEquals(Array.from(await tokenFile(`${dir}/t.u32`, 32)), [70000, 3]);
    await assertRejects(
      () => tokenFile(`${dir}/t.u16`, 32),
      DataError,
      "not a whole number of uint32",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readers: Parquet text column across row groups (hyparquet), wrong column named", async () => {
  const path = new URL("../fixtures/data/docs.parquet", import.meta.url).pathname;
  assertEquals(await all(parquetDocuments(path)), DOCS.filter((d) => d));
  await assertRejects(
    () => all(parquetDocuments(path, "body")),
    DataError,
    'no column "body" (columns: id, text)',
  );
});
