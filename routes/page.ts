// GET / — the live page (web/index.html) and its two static files under /ui/. With a token set
// they need it like every route but /health (routes/auth.ts: `/?token=` sets a cookie once).
import { Hono } from "hono";
import { z } from "zod";
import { describe } from "./describe.ts";
import { notFound } from "./errors.ts";

const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

const cache = new Map<string, string>();

function read(name: string): string {
  let s = cache.get(name);
  if (s === undefined) {
    s = Deno.readTextFileSync(new URL(`../web/${name}`, import.meta.url));
    cache.set(name, s);
  }
  return s;
}

export function isPagePath(path: string): boolean {
  return path === "/" || path.startsWith("/ui/");
}

export function pageRoutes() {
  return new Hono()
    .get(
      "/",
      describe({
        summary: "the live page (with a token: open /?token=<token> once)",
        ok: { status: 200, description: "HTML", content: { "text/html": z.string() } },
      }),
      (c) => c.body(read("index.html"), 200, { "content-type": FILES["index.html"] }),
    )
    .get(
      "/ui/:file",
      describe({
        summary: "the live page's script and style",
        path: z.object({ file: z.enum(["app.js", "app.css"]) }),
        ok: {
          status: 200,
          description: "the file",
          content: { "text/javascript": z.string(), "text/css": z.string() },
        },
        errors: { 404: "no such file" },
      }),
      (c) => {
        const file = c.req.param("file");
        if (!(file in FILES) || file === "index.html") throw notFound("file", file);
        return c.body(read(file), 200, { "content-type": FILES[file] });
      },
    );
}
