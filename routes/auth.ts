// Bearer-token auth for every route but /health. The token may hold any printable ASCII
// (spaces, "#" …), so the header is split on the first space only, never matched against the
// RFC 6750 token68 alphabet. The live page cannot put a header on its own <script> and <link>
// requests, so `/?token=…` once sets an HttpOnly, SameSite=Strict cookie that later requests
// carry. A presented token is never logged or echoed.
import type { Context, MiddlewareHandler } from "hono";
import { errorBody } from "./errors.ts";

export const AUTH_COOKIE = "splice_token";
const OPEN = new Set(["/health"]);

async function digest(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
}

/** Equality that takes the same time wherever the strings differ (hashes compared in full). */
async function sameToken(given: string, want: Uint8Array): Promise<boolean> {
  const g = await digest(given);
  let diff = 0;
  for (let i = 0; i < g.length; i++) diff |= g[i] ^ want[i];
  return diff === 0;
}

function bearer(c: Context): string | null | undefined {
  const h = c.req.header("authorization");
  if (h === undefined) return undefined;
  const m = /^bearer (.+)$/is.exec(h.trim());
  return m ? m[1] : null;
}

function cookie(c: Context): string | undefined {
  for (const part of (c.req.header("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === AUTH_COOKIE) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function unauthorized(c: Context, message: string): Response {
  return c.json(errorBody("unauthorized", message), 401, {
    "WWW-Authenticate": 'Bearer realm="splice"',
  });
}

export function requireToken(token: string): MiddlewareHandler {
  const want = digest(token);
  return async (c, next) => {
    if (OPEN.has(c.req.path)) return await next();
    const header = bearer(c);
    if (header === null) {
      return unauthorized(c, "malformed Authorization header: send Authorization: Bearer <token>");
    }
    // The page's first visit brings the token in the query; only there, and only for a GET.
    const query = c.req.path === "/" && c.req.method === "GET" ? c.req.query("token") : undefined;
    const given = header ?? query ?? cookie(c);
    if (given === undefined) {
      return unauthorized(
        c,
        "missing token: send Authorization: Bearer <token> (the live page: open /?token=<token>)",
      );
    }
    if (!(await sameToken(given, await want))) return unauthorized(c, "wrong token");
    await next();
    if (query !== undefined && header === undefined) {
      c.res.headers.append(
        "Set-Cookie",
        `${AUTH_COOKIE}=${encodeURIComponent(query)}; Path=/; HttpOnly; SameSite=Strict`,
      );
    }
  };
}
