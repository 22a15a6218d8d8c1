// /openapi.json, generated (hono-openapi) from the operations the routes declare beside themselves
// (routes/describe.ts) over the zod schemas they validate with and answer in; and /docs, a
// readable page of it that needs no CDN.
import { Hono } from "hono";
import { generateSpecs } from "hono-openapi";
import { z } from "zod";
import { describe } from "./describe.ts";

export type OpenApiDocument = Awaited<ReturnType<typeof generateSpecs>>;

/** The document of every route mounted on `app` that declares its operation. */
export function openApiDocument(app: Hono): Promise<OpenApiDocument> {
  return generateSpecs(app, {
    documentation: {
      info: {
        title: "splice",
        version: "0.1.0",
        description:
          "Fine-tune sparse autoencoders to be faithful to the LM they read (KL+MSE), evaluate " +
          "them, and stream metrics over SSE. Errors: {error: {code, message, details}}.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    // /openapi.json and /saes/{id}/cfg.json are routes, not static files to leave out.
    excludeStaticFile: false,
    // Bodies are validated by routes/validate.ts, whose 400 each route declares itself.
    defaultValidationErrorResponse: false,
  });
}

type Schema = {
  properties?: Record<
    string,
    { description?: string; default?: unknown; type?: unknown; enum?: unknown[]; $ref?: string }
  >;
  oneOf?: Schema[];
  anyOf?: Schema[];
};

function docsPage(doc: OpenApiDocument): string {
  const esc = (s: string) => s.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  const rows = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops as Record<string, { summary?: string }>).map(([m, op]) =>
      `<tr><td><code>${m.toUpperCase()}</code></td><td><code>${esc(path)}</code></td><td>${
        esc(op.summary ?? "")
      }</td></tr>`
    )
  );
  const table = (s: Schema) => {
    const trs = Object.entries(s.properties ?? {}).map(([k, p]) =>
      `<tr><td><code>${k}</code></td><td>${
        esc(JSON.stringify(p.enum ?? p.type ?? p.$ref?.split("/").pop() ?? ""))
      }</td><td>${esc(JSON.stringify(p.default ?? ""))}</td><td>${
        esc(p.description ?? "")
      }</td></tr>`
    );
    return `<table><tr><th>field</th><th>type</th><th>default</th><th>meaning</th></tr>${
      trs.join("")
    }</table>`;
  };
  const schemas = Object.entries(doc.components.schemas ?? {}).map(([name, raw]) => {
    const s = raw as Schema;
    const variants = s.properties ? [s] : s.oneOf ?? s.anyOf ?? [s];
    return `<h2>${name}</h2>${variants.map(table).join("<p>or</p>")}`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>splice API</title>
<style>body{font:14px sans-serif;max-width:1100px;margin:2em auto}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}</style>
</head><body><h1>splice API</h1><p>${
    esc(doc.info.description ?? "")
  }</p><p><a href="/openapi.json">openapi.json</a></p>
<table><tr><th></th><th>path</th><th></th></tr>${rows.join("")}</table>${
    schemas.join("")
  }</body></html>`;
}

/** Serves the document of `app`, made on the first request (every route is mounted by then). */
export function openApiRoutes(app: Hono) {
  let doc: Promise<OpenApiDocument> | undefined;
  const document = () => doc ??= openApiDocument(app);
  return new Hono()
    .get(
      "/openapi.json",
      describe({
        summary: "this document (OpenAPI 3.1)",
        ok: {
          status: 200,
          description: "the document",
          content: { "application/json": z.looseObject({ openapi: z.string() }) },
        },
      }),
      async (c) => c.json(await document()),
    )
    .get(
      "/docs",
      describe({
        summary: "this document as a page",
        ok: { status: 200, description: "HTML", content: { "text/html": z.string() } },
      }),
      async (c) => c.html(docsPage(await document())),
    );
}
