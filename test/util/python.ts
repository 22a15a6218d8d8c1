// Whether python3 runs here. Tests that compare with a Python script skip without it, except where
// SPLICE_REQUIRE_PYTHON is set (CI installs python3 and sets it): there a missing python3 fails.
let found: Promise<boolean> | null = null;

export function havePython(): Promise<boolean> {
  found ??= new Deno.Command("python3", { args: ["--version"], stdout: "null", stderr: "null" })
    .output().then((o) => o.success).catch(() => false);
  return found.then((ok) => {
    if (!ok && Deno.env.get("SPLICE_REQUIRE_PYTHON")) {
      throw new Error("python3 is required here (SPLICE_REQUIRE_PYTHON) but does not run");
    }
    return ok;
  });
}
