// The service as a user runs it: a real process on loopback.
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertStringIncludes,
} from "@std/assert";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export function startServer(args: string[], env: Record<string, string> = {}) {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return proc;
}

async function waitHealthy(url: string, ms: number): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) return await r.json();
      await r.body?.cancel();
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no /health answer within ${ms} ms`);
}

Deno.test("serve: /health names the adapter within seconds; SIGTERM exits cleanly; a second start on the same data dir works", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const round of [1, 2]) {
      const port = freePort();
      const proc = startServer(["--port", String(port), "--data-dir", dir]);
      const t0 = Date.now();
      // A liveness bound, not a speed target: the first start initialises PGlite (seconds; longer on a busy machine).
      const health = await waitHealthy(`http://127.0.0.1:${port}`, 120_000);
      const secs = (Date.now() - t0) / 1000;
      console.log(`round ${round}: /health after ${secs.toFixed(1)} s`);
      assertMatch(String((health.gpu as { adapter: string }).adapter), /\w/);
      assertEquals((health.database as { kind: string }).kind, "pglite");
      const models = await (await fetch(`http://127.0.0.1:${port}/models`)).json();
      assertEquals(models.models.map((m: { id: string }) => m.id), ["tiny-neox"]);
      proc.kill("SIGTERM");
      const out = await proc.output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assertStringIncludes(new TextDecoder().decode(out.stderr), "shutting down");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad config: a one-line message naming the setting, exit code 2", async () => {
  for (
    const [args, env, expect] of [
      [["--port", "abc"], {}, "--port / SPLICE_PORT"],
      [[], { SPLICE_PORT: "70000" }, "SPLICE_PORT"],
      [["--frobnicate"], {}, "frobnicate"],
      [[], { DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    ] as [string[], Record<string, string>, string][]
  ) {
    const out = await startServer(args, env).output();
    const err = new TextDecoder().decode(out.stderr).split("\n").filter((l) =>
      l.startsWith("splice:")
    );
    assertNotEquals(out.code, 0);
    assertEquals(out.code, 2);
    assertEquals(err.length, 1, err.join("\n"));
    assertStringIncludes(err[0], expect);
  }
});

Deno.test("unreachable PostgreSQL: a clear message and exit ≠ 0", async () => {
  const out = await startServer(["--port", String(freePort())], {
    DATABASE_URL: `postgres://nobody@127.0.0.1:${freePort()}/none`,
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 4);
  assert(err.includes("cannot open PostgreSQL"), err);
});

Deno.test("no GPU adapter: one line saying how to get one, exit code 3", async () => {
  // wgpu with only a backend this OS lacks finds no adapter, as on a machine without drivers.
  const out = await startServer(["--port", String(freePort())], { DENO_WEBGPU_BACKEND: "dx12" })
    .output();
  const err = new TextDecoder().decode(out.stderr).split("\n").filter((l) =>
    l.startsWith("splice:")
  );
  assertEquals(out.code, 3);
  assertEquals(err.length, 1);
  assertStringIncludes(err[0], "mesa-vulkan-drivers");
});
