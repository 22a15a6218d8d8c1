// Shared output of benchmarks: a table on stdout and JSON under bench/out/.

export function printTable(rows: Record<string, string | number>[]): void {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]);
  const cell = (v: string | number) => typeof v === "number" ? fmtNum(v) : v;
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? "").length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join("  ");
  console.log(line(cols));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c] ?? ""))));
}

function fmtNum(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(3) : v.toPrecision(3);
}

export async function writeJson(name: string, data: unknown): Promise<string> {
  const dir = new URL("./out/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const path = new URL(`${name}.json`, dir);
  await Deno.writeTextFile(path, JSON.stringify(data, null, 2) + "\n");
  return path.pathname;
}
