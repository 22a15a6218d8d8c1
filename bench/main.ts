// `deno task bench <name>` runs bench/<name>.ts; with no name, lists them.
const name = Deno.args[0];
const names = [...Deno.readDirSync(new URL(".", import.meta.url))]
  .map((e) => e.name)
  .filter((n) => n.endsWith(".ts") && n !== "main.ts" && !n.startsWith("_"))
  .map((n) => n.slice(0, -3))
  .sort();
if (!name || !names.includes(name)) {
  console.error(`usage: deno task bench <name>   (one of: ${names.join(", ") || "none yet"})`);
  Deno.exit(name ? 2 : 0);
}
await import(`./${name}.ts`);
