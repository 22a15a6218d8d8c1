// The HTTP app. Routes validate, call, and shape responses; the work happens in jobs/ and below.
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requireToken } from "./auth.ts";
import type { AppDeps } from "./deps.ts";
import { ApiError, errorBody, onError } from "./errors.ts";
import { healthRoutes } from "./health.ts";
import { datasetRoutes } from "./datasets.ts";
import { evalRoutes } from "./evals.ts";
import { experimentRoutes } from "./experiments.ts";
import { finetuneRoutes } from "./finetunes.ts";
import { openApiRoutes } from "./openapi.ts";
import { pageRoutes } from "./page.ts";
import { modelRoutes } from "./models.ts";
import { saeRoutes } from "./saes.ts";
import { UploadGate } from "./uploads.ts";

/** Each upload may hold up to --max-body-bytes on disk and about as much in memory while checked. */
export const MAX_CONCURRENT_UPLOADS = 2;

/** Uploads stream to disk and count their bytes as they arrive, so the body limit skips them. */
function isUpload(method: string, path: string, contentType: string): boolean {
  return method === "POST" && (path === "/models" || path === "/saes") &&
    contentType.toLowerCase().startsWith("multipart/form-data");
}

export function createApp(appDeps: AppDeps): Hono {
  const deps = { ...appDeps, uploads: appDeps.uploads ?? new UploadGate(MAX_CONCURRENT_UPLOADS) };
  const app = new Hono();
  app.onError(onError);
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404)
  );
  // Auth first, so an unauthenticated caller cannot make us read (or spool) a body at all.
  if (deps.config.token) app.use("*", requireToken(deps.config.token));
  const limit = bodyLimit({
    maxSize: deps.config.maxBodyBytes,
    onError: () => {
      throw new ApiError(
        413,
        "payload_too_large",
        `the body exceeds ${deps.config.maxBodyBytes} bytes`,
      );
    },
  });
  app.use(
    "*",
    (c, next) =>
      isUpload(c.req.method, c.req.path, c.req.header("content-type") ?? "")
        ? next()
        : limit(c, next),
  );
  app.route("/health", healthRoutes(deps));
  app.route("/models", modelRoutes(deps));
  app.route("/saes", saeRoutes(deps));
  app.route("/finetunes", finetuneRoutes(deps));
  app.route("/evals", evalRoutes(deps));
  app.route("/experiments", experimentRoutes(deps));
  app.route("/datasets", datasetRoutes(deps));
  app.route("/", openApiRoutes(app));
  app.route("/", pageRoutes());
  return app;
}
