// The README's commands must stay true: every `./deno task X` names a task in deno.json, every
// script it runs exists, and the test line is the one CI runs.
import { assert, assertEquals } from "@std/assert";

const root = new URL("../", import.meta.url);
const readme = Deno.readTextFileSync(new URL("README.md", root));
const tasks = JSON.parse(Deno.readTextFileSync(new URL("deno.json", root))).tasks as Record<
  string,
  string
>;

Deno.test("README: the first lines set up and run the demo, then the tests", () => {
  const block = readme.split("```sh\n")[1].split("```")[0].trim().split("\n");
  assertEquals(block[0].split("#")[0].trim(), "./scripts/setup.sh && ./deno task demo");
  assertEquals(block[1].split("#")[0].trim(), "./scripts/setup.sh && ./deno task test");
  assert(block[1].endsWith("# run the tests"), ".ci/run finds the test command by this comment");
});

Deno.test("README: every task it names exists and every script it runs is in the repo", () => {
  for (const m of readme.matchAll(/\.\/deno task ([\w:-]+)/g)) {
    assert(m[1] in tasks, `no task "${m[1]}"`);
  }
  for (const m of readme.matchAll(/(?:^|\s)(\.\/[\w./-]+|examples\/[\w./-]+)/gm)) {
    const path = m[1].replace(/^\.\//, "");
    if (path === "deno" || path.startsWith(".splice")) continue;
    Deno.statSync(new URL(path, root));
  }
});
