// What every route is built from. Its own module so that route files and routes/app.ts (which
// mounts them) never import each other.
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import type { GpuContext } from "../gpu/device.ts";
import type { EventHub } from "../jobs/events.ts";
import type { JobRunner } from "../jobs/runner.ts";
import type { UploadGate } from "./uploads.ts";

export interface AppDeps {
  config: Config;
  gpu: GpuContext;
  database: Database;
  runner: JobRunner;
  events: EventHub;
  /** performance.now() at start, for uptime. */
  startedAt: number;
  /** Caps concurrent uploads of models and SAEs (default: MAX_CONCURRENT_UPLOADS). */
  uploads?: UploadGate;
}
