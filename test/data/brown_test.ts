import { assert, assertEquals } from "@std/assert";
import { brownParagraphs, corpusDir, loadBrown } from "../../data/brown.ts";
import { havePython } from "../util/python.ts";

Deno.test("Brown normalisation: tags stripped at the last '/', `` and '' become \", paragraphs on blank lines", () => {
  const raw =
    "\n\n\tThe/at Fulton/np-tl ``/`` said/vbd a/b/nn ''/'' ./.\n\n \n\tNext/ap\xa0line/nn ./.\n";
  assertEquals(brownParagraphs(raw), ['The Fulton " said a/b " .', "Next line ."]);
});

Deno.test("Brown corpus: split sizes, and byte-identical to tools/python/brown_text.py when python3 runs", async () => {
  const b = await loadBrown();
  assertEquals(b.files, { train: 459, validation: 41 });
  assertEquals(b.paragraphs, { train: 14294, validation: 1373 });
  assertEquals(new TextEncoder().encode(b.train).length, 5_608_507);
  assertEquals(new TextEncoder().encode(b.validation).length, 500_941);
  const out = await Deno.makeTempDir();
  try {
    const script = new URL("../../tools/python/brown_text.py", import.meta.url).pathname;
    if (!(await havePython())) return console.log("python3 not available: compared sizes only");
    // With python3 present, the script has to run: its failure fails the test.
    const py = await new Deno.Command("python3", {
      args: [script, corpusDir(), out],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(py.success, new TextDecoder().decode(py.stderr));
    assertEquals(b.train, await Deno.readTextFile(`${out}/brown-train.txt`));
    assertEquals(b.validation, await Deno.readTextFile(`${out}/brown-val.txt`));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
