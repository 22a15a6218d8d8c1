// /openapi.json, generated from the same zod schemas the routes validate with, and /docs, a
// readable page of it that needs no CDN.
import { Hono } from "hono";
import { z } from "zod";
import { EvalConfig } from "../eval/config.ts";
import { FinetuneConfig } from "../train/config.ts";
import { ExperimentConfig } from "../train/experiment_config.ts";
import { DatasetSpec } from "../data/dataset_config.ts";

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any" });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (s: unknown) => ({ "application/json": { schema: s } });
const id = [{ name: "id", in: "path", required: true, schema: { type: "string" } }];
const ok = (description: string) => ({ description });

export function openApiDocument() {
  const errors = {
    400: ok("invalid request (field paths in error.details)"),
    401: ok("missing or wrong token"),
    404: ok("unknown id"),
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "splice",
      version: "0.1.0",
      description:
        "Fine-tune sparse autoencoders to be faithful to the LM they read (KL+MSE), evaluate them, " +
        "and stream metrics over SSE. Errors: {error: {code, message, details}}.",
    },
    components: {
      schemas: {
        FinetuneConfig: schema(FinetuneConfig),
        EvalConfig: schema(EvalConfig),
        ExperimentConfig: schema(ExperimentConfig),
        DatasetSpec: schema(DatasetSpec),
      },
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
    paths: {
      "/health": {
        get: {
          summary: "adapter, limits, ONNX Runtime version, database, uptime",
          security: [],
          responses: { 200: ok("ok") },
        },
      },
      "/models": {
        get: { summary: "registered models", responses: { 200: ok("list") } },
        post: {
          summary:
            "register an ONNX LM: JSON {name, path, context_length} for a file under SPLICE_ROOTS, " +
            "or multipart/form-data with the .onnx as field model (plus name, context_length)",
          responses: {
            201: ok("registered"),
            403: ok("registering by path is off (no SPLICE_ROOTS)"),
            429: ok("too many uploads at once"),
            ...errors,
          },
        },
      },
      "/models/{id}": {
        get: { summary: "a model", parameters: id, responses: { 200: ok("model"), ...errors } },
        delete: {
          summary: "delete an uploaded or registered model (an uploaded file goes too)",
          parameters: id,
          responses: {
            200: ok("deleted"),
            409: ok("built in, or read by a queued or running job"),
            ...errors,
          },
        },
      },
      "/models/{id}/hooks": {
        get: {
          summary: "hook points (residual stream) of a model",
          parameters: id,
          responses: { 200: ok("hooks"), ...errors },
        },
      },
      "/saes": {
        get: { summary: "registered SAEs", responses: { 200: ok("list") } },
        post: {
          summary: "upload an SAE in SAELens layout (multipart: cfg.json, sae_weights.safetensors)",
          responses: { 201: ok("uploaded"), 429: ok("too many uploads at once"), ...errors },
        },
      },
      "/saes/{id}": {
        get: { summary: "an SAE", parameters: id, responses: { 200: ok("SAE") } },
        delete: {
          summary: "delete",
          parameters: id,
          responses: { 200: ok("deleted"), 409: ok("read by a queued or running job"), ...errors },
        },
      },
      "/saes/{id}/cfg.json": {
        get: { summary: "download cfg.json", parameters: id, responses: { 200: ok("file") } },
      },
      "/saes/{id}/sae_weights.safetensors": {
        get: { summary: "download the weights", parameters: id, responses: { 200: ok("file") } },
      },
      "/datasets": {
        get: { summary: "data sets (brown is built in)", responses: { 200: ok("list") } },
        post: {
          summary: "register a text, JSONL, Parquet or token file under SPLICE_ROOTS",
          requestBody: { required: true, content: json(ref("DatasetSpec")) },
          responses: { 201: ok("registered"), 403: ok("outside the roots"), ...errors },
        },
      },
      "/finetunes": {
        get: { summary: "fine-tunes", responses: { 200: ok("list") } },
        post: {
          summary: "start a fine-tune (mse, kl_mse, e2e, kl_only)",
          requestBody: { required: true, content: json(ref("FinetuneConfig")) },
          responses: {
            202: ok("queued; links to events, metrics and (when done) the SAE"),
            ...errors,
          },
        },
      },
      "/finetunes/{id}": {
        get: { summary: "a fine-tune", parameters: id, responses: { 200: ok("job"), ...errors } },
      },
      "/finetunes/{id}/cancel": {
        post: {
          summary: "cancel (within one step; the last checkpoint is kept)",
          parameters: id,
          responses: { 200: ok("job") },
        },
      },
      "/finetunes/{id}/metrics": {
        get: { summary: "metrics rows", parameters: id, responses: { 200: ok("rows") } },
      },
      "/finetunes/{id}/events": {
        get: {
          summary:
            "Server-Sent Events: state, progress, metrics, log, result, error. Resume with Last-Event-ID or ?lastEventId=",
          parameters: id,
          responses: { 200: { description: "event stream", content: { "text/event-stream": {} } } },
        },
      },
      "/evals": {
        get: { summary: "evaluations", responses: { 200: ok("list") } },
        post: {
          summary: "start a CE-eval",
          requestBody: { required: true, content: json(ref("EvalConfig")) },
          responses: { 202: ok("queued"), ...errors },
        },
      },
      "/evals/{id}": {
        get: {
          summary: "an evaluation and its result",
          parameters: id,
          responses: { 200: ok("job") },
        },
      },
      "/evals/{id}/cancel": {
        post: {
          summary: "cancel it (within one batch)",
          parameters: id,
          responses: { 200: ok("job") },
        },
      },
      "/evals/{id}/events": {
        get: { summary: "its events (SSE)", parameters: id, responses: { 200: ok("stream") } },
      },
      "/experiments": {
        get: { summary: "experiments", responses: { 200: ok("list") } },
        post: {
          summary: "start an experiment: arms from one SAE on identical data, or a sweep",
          requestBody: { required: true, content: json(ref("ExperimentConfig")) },
          responses: { 202: ok("queued"), ...errors },
        },
      },
      "/experiments/{id}": {
        get: {
          summary: "an experiment: state, results table, curves, weight stability, plot links",
          parameters: id,
          responses: { 200: ok("experiment") },
        },
      },
      "/experiments/{id}/plots/{name}": {
        get: {
          summary: "a plot as SVG: ce_gap_curve, final_ce_gap, weight_stability(_encoder)",
          parameters: [...id, {
            name: "name",
            in: "path",
            required: true,
            schema: { type: "string" },
          }],
          responses: { 200: { description: "SVG", content: { "image/svg+xml": {} } } },
        },
      },
      "/experiments/{id}/events": {
        get: { summary: "its events (SSE)", parameters: id, responses: { 200: ok("stream") } },
      },
      "/experiments/{id}/cancel": {
        post: { summary: "cancel it", parameters: id, responses: { 200: ok("experiment") } },
      },
    },
  };
}

function docsPage(doc: ReturnType<typeof openApiDocument>): string {
  const esc = (s: string) => s.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  const rows = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops as Record<string, { summary: string }>).map(([m, op]) =>
      `<tr><td><code>${m.toUpperCase()}</code></td><td><code>${esc(path)}</code></td><td>${
        esc(op.summary)
      }</td></tr>`
    )
  );
  const schemas = Object.entries(doc.components.schemas).map(([name, s]) => {
    const props = (s as {
      properties?: Record<
        string,
        { description?: string; default?: unknown; type?: unknown; enum?: unknown[] }
      >;
    }).properties ?? {};
    const trs = Object.entries(props).map(([k, p]) =>
      `<tr><td><code>${k}</code></td><td>${esc(JSON.stringify(p.enum ?? p.type ?? ""))}</td><td>${
        esc(JSON.stringify(p.default ?? ""))
      }</td><td>${esc(p.description ?? "")}</td></tr>`
    );
    return `<h2>${name}</h2><table><tr><th>field</th><th>type</th><th>default</th><th>meaning</th></tr>${
      trs.join("")
    }</table>`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>splice API</title>
<style>body{font:14px sans-serif;max-width:1100px;margin:2em auto}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}</style>
</head><body><h1>splice API</h1><p>${
    esc(doc.info.description)
  }</p><p><a href="/openapi.json">openapi.json</a></p>
<table><tr><th></th><th>path</th><th></th></tr>${rows.join("")}</table>${
    schemas.join("")
  }</body></html>`;
}

export function openApiRoutes() {
  const doc = openApiDocument();
  return new Hono()
    .get("/openapi.json", (c) => c.json(doc))
    .get("/docs", (c) => c.html(docsPage(doc)));
}
