// The layering of docs/ARCHITECTURE.md, checked: an import goes down the layer table or stays in
// its own folder, never up, and no set of modules imports itself round (type-only imports count —
// a type cycle still ties the modules together for a reader). The graph is parsed from the source
// text, so modules no entry point reaches are checked too.
import { assert, assertEquals } from "@std/assert";

/** Rank of each top-level folder (or root file): an import may only go to a rank at most its own. */
const LAYERS: Record<string, number> = {
  "main.ts": 6,
  scripts: 6,
  bench: 6,
  routes: 5,
  jobs: 4,
  train: 3,
  eval: 3,
  experiments: 3,
  sae: 2,
  lm: 2,
  data: 2,
  gpu: 1,
  shaders: 1,
  db: 1,
  lib: 0,
  "config.ts": 0,
};

/** Top-level folders that hold no service source. */
const NOT_SOURCE = new Set([
  "test",
  "node_modules",
  "web",
  "tools",
  "examples",
  "fixtures",
  "docs",
]);

const root = new URL("../", import.meta.url).pathname;

/** Relative specifiers a module imports: static, re-exported, side-effect and dynamic. */
function relativeImports(src: string): string[] {
  const code = src.split("\n").filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l)).join("\n");
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^"'`;]*?\sfrom\s*["'](\.{1,2}\/[^"']+)["']/g,
    /\bimport\s*["'](\.{1,2}\/[^"']+)["']/g,
    /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) found.push(m[1]);
  return found;
}

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) throw new Error(`import "${path}" leaves the repository`);
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

function resolve(from: string, spec: string): string {
  return normalize(from.split("/").slice(0, -1).concat(spec).join("/"));
}

type Graph = Map<string, string[]>;

function layerOf(path: string): string {
  return path.split("/")[0];
}

/** Each edge that runs up the layer table, as "from -> to"; a module outside the table is an error. */
function upwardEdges(graph: Graph): string[] {
  const rank = (p: string) => {
    const r = LAYERS[layerOf(p)];
    if (r === undefined) {
      throw new Error(`${p} is in no layer: add "${layerOf(p)}" to LAYERS in this test`);
    }
    return r;
  };
  const bad: string[] = [];
  for (const [from, tos] of graph) {
    for (const to of tos) {
      if (layerOf(to) !== layerOf(from) && rank(to) > rank(from)) bad.push(`${from} -> ${to}`);
    }
  }
  return bad;
}

/** Every cycle a depth-first walk meets, each as "a -> b -> … -> a", one per back edge. */
function cycles(graph: Graph): string[] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const found: string[] = [];
  const visit = (u: string) => {
    state.set(u, "open");
    stack.push(u);
    for (const v of graph.get(u) ?? []) {
      const s = state.get(v);
      if (s === "open") found.push([...stack.slice(stack.indexOf(v)), v].join(" -> "));
      else if (s === undefined) visit(v);
    }
    stack.pop();
    state.set(u, "done");
  };
  for (const u of [...graph.keys()].sort()) if (!state.has(u)) visit(u);
  return found;
}

function sourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(root + dir)) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.name.startsWith(".")) continue;
      if (e.isDirectory) {
        if (dir === "" && NOT_SOURCE.has(e.name)) continue;
        walk(rel);
      } else if (e.isFile && e.name.endsWith(".ts")) files.push(rel);
    }
  };
  walk("");
  return files.sort();
}

function repoGraph(): Graph {
  const graph: Graph = new Map();
  for (const f of sourceFiles()) {
    const targets = relativeImports(Deno.readTextFileSync(root + f)).map((s) => resolve(f, s));
    graph.set(f, [...new Set(targets)]);
  }
  return graph;
}

Deno.test("import graph: the parser finds every kind of relative import and nothing else", () => {
  const src = [
    `// import { x } from "./commented.ts";`,
    `import {`,
    `  a,`,
    `  type B,`,
    `} from "./multi.ts";`,
    `import type { C } from "../up/type_only.ts";`,
    `export { d } from "./reexport.ts";`,
    `export * from "./star.ts";`,
    `import "./side_effect.ts";`,
    `const m = await import("./dynamic.ts");`,
    `import { z } from "npm:zod";`,
    `import { Hono } from "hono";`,
    `type P = import("onnx-proto").onnx.ModelProto;`,
  ].join("\n");
  assertEquals(relativeImports(src).sort(), [
    "../up/type_only.ts",
    "./dynamic.ts",
    "./multi.ts",
    "./reexport.ts",
    "./side_effect.ts",
    "./star.ts",
  ]);
  assertEquals(resolve("lm/autodiff/rules/norm.ts", "../rule.ts"), "lm/autodiff/rule.ts");
  assertEquals(resolve("scripts/demo.ts", "../main.ts"), "main.ts");
});

Deno.test("import graph: the checker names an upward edge and a cycle in a synthetic graph", () => {
  const g: Graph = new Map([
    ["routes/a.ts", ["jobs/b.ts", "lib/c.ts"]],
    ["jobs/b.ts", ["train/d.ts"]],
    ["db/e.ts", ["jobs/b.ts", "lib/c.ts"]],
    ["train/d.ts", ["eval/f.ts"]],
    ["eval/f.ts", []],
    ["lib/c.ts", []],
    ["lm/x.ts", ["lm/y.ts"]],
    ["lm/y.ts", ["lm/z.ts"]],
    ["lm/z.ts", ["lm/x.ts"]],
  ]);
  assertEquals(upwardEdges(g), ["db/e.ts -> jobs/b.ts"]);
  assertEquals(cycles(g), ["lm/x.ts -> lm/y.ts -> lm/z.ts -> lm/x.ts"]);
  const acyclic: Graph = new Map([["a/x.ts", ["a/y.ts"]], ["a/y.ts", []]]);
  assertEquals(cycles(acyclic), []);
  let named = "";
  try {
    upwardEdges(new Map([["nowhere/x.ts", ["lib/c.ts"]]]));
  } catch (e) {
    named = (e as Error).message;
  }
  assert(named.includes('"nowhere"'), `a module outside the layers must be an error: ${named}`);
});

Deno.test("import graph: no module imports up the layer table", () => {
  const graph = repoGraph();
  assert(graph.size > 50, `found only ${graph.size} source modules`);
  for (const tos of graph.values()) {
    for (const to of tos) {
      assert(graph.has(to) || !to.endsWith(".ts"), `import of a missing module ${to}`);
    }
  }
  const up = upwardEdges(graph);
  assertEquals(up, [], `imports that run upward (see docs/ARCHITECTURE.md):\n${up.join("\n")}`);
});

Deno.test("import graph: no cycles, type-only imports included", () => {
  const found = cycles(repoGraph());
  assertEquals(found, [], `import cycles:\n${found.join("\n")}`);
});
