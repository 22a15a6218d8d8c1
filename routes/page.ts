// GET / — the live page (web/index.html) and its static files under /ui/: its script and style
// from web/, and the plain-JavaScript modules it shares with the service from lib/. With a token
// set they need it like every route but /health (routes/auth.ts: `/?token=` sets a cookie once).
import { Hono } from "hono";
import { z } from "zod";
import { describe } from "./describe.ts";
import { notFound } from "./errors.ts";

const JS = "text/javascript; charset=utf-8";
/** Each file's folder and type. */
const FILES: Record<string, { dir: "web" | "lib"; type: string }> = {
  "index.html": { dir: "web", type: "text/html; charset=utf-8" },
  "app.js": { dir: "web", type: JS },
  "app.css": { dir: "web", type: "text/css; charset=utf-8" },
  "sse.js": { dir: "lib", type: JS },
  "palette.js": { dir: "lib", type: JS },
  "eval_cells.js": { dir: "lib", type: JS },
};
const UI_FILES = ["app.js", "app.css", "sse.js", "palette.js", "eval_cells.js"] as const;

const cache = new Map<string, string>();

function read(name: string): string {
  let s = cache.get(name);
  if (s === undefined) {
    s = Deno.readTextFileSync(new URL(`../${FILES[name].dir}/${name}`, import.meta.url));
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
      (c) => c.body(read("index.html"), 200, { "content-type": FILES["index.html"].type }),
    )
    .get(
      "/ui/:file",
      describe({
        summary: "the live page's script, style and the modules it shares with the service",
        path: z.object({ file: z.enum(UI_FILES) }),
        ok: {
          status: 200,
          description: "the file",
          content: { "text/javascript": z.string(), "text/css": z.string() },
        },
        errors: { 404: "no such file" },
      }),
      (c) => {
        const file = c.req.param("file");
        if (!(UI_FILES as readonly string[]).includes(file)) throw notFound("file", file);
        return c.body(read(file), 200, { "content-type": FILES[file].type });
      },
    );
}
