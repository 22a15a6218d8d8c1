// The HTTP app. Routes validate, call, and shape responses; the work happens in jobs/ and below.
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import type { GpuContext } from "../gpu/device.ts";
import type { EventHub } from "../jobs/events.ts";
import type { JobRunner } from "../jobs/runner.ts";
import { ApiError, errorBody, onError } from "./errors.ts";
import { healthRoutes } from "./health.ts";
import { datasetRoutes } from "./datasets.ts";
import { evalRoutes } from "./evals.ts";
import { experimentRoutes } from "./experiments.ts";
import { finetuneRoutes } from "./finetunes.ts";
import { openApiRoutes } from "./openapi.ts";
import { isPagePath, pageRoutes } from "./page.ts";
import { modelRoutes } from "./models.ts";
import { saeRoutes } from "./saes.ts";

export interface AppDeps {
  config: Config;
  gpu: GpuContext;
  database: Database;
  runner: JobRunner;
  events: EventHub;
  /** performance.now() at start, for uptime. */
  startedAt: number;
}

const OPEN = new Set(["/health", "/openapi.json", "/docs"]);

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.onError(onError);
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404)
  );
  app.use(
    "*",
    bodyLimit({
      maxSize: deps.config.maxBodyBytes,
      onError: () => {
        throw new ApiError(
          413,
          "payload_too_large",
          `the body exceeds ${deps.config.maxBodyBytes} bytes`,
        );
      },
    }),
  );
  if (deps.config.token) {
    const auth = bearerAuth({
      token: deps.config.token,
      noAuthenticationHeader: {
        message: errorBody("unauthorized", "missing Authorization: Bearer <token>"),
      },
      invalidAuthenticationHeader: {
        message: errorBody("unauthorized", "malformed Authorization header"),
      },
      invalidToken: { message: errorBody("unauthorized", "wrong token") },
    });
    app.use(
      "*",
      // /health and the API description stay open: load balancers and readers need no token.
      async (c, next) =>
        OPEN.has(c.req.path) || isPagePath(c.req.path) ? await next() : await auth(c, next),
    );
  }
  app.route("/health", healthRoutes(deps));
  app.route("/models", modelRoutes(deps));
  app.route("/saes", saeRoutes(deps));
  app.route("/finetunes", finetuneRoutes(deps));
  app.route("/evals", evalRoutes(deps));
  app.route("/experiments", experimentRoutes(deps));
  app.route("/datasets", datasetRoutes(deps));
  app.route("/", openApiRoutes());
  app.route("/", pageRoutes());
  return app;
}
