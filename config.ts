// Service configuration from flags and environment, validated by zod. A bad value is a one-line
// message that names the setting and what to do; the process exits with code 2.
import { parseArgs } from "node:util";
import { z } from "zod";

const port = z.coerce.number().int().min(0).max(65535);

export const Config = z.object({
  port: port.default(8787),
  host: z.string().min(1).default("127.0.0.1"),
  dataDir: z.string().min(1).default("./.splice"),
  databaseUrl: z.string().regex(
    /^postgres(ql)?:\/\//,
    "must start with postgres:// or postgresql://",
  )
    .optional(),
  /** Directories whose files may be registered by path (models, data sets, SAEs). */
  roots: z.array(z.string().min(1)).default([]),
  /**
   * When set, every route but /health needs `Authorization: Bearer <token>` (or the cookie the
   * live page gets from `/?token=<token>`). Any printable ASCII; HTTP trims header values, so no
   * leading or trailing space.
   */
  token: z.string().min(8, "must be at least 8 characters")
    .regex(/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/, {
      message: "must be printable ASCII (spaces allowed, but not at either end)",
    })
    .optional(),
  /** Largest request body in bytes (uploads of SAEs count). */
  maxBodyBytes: z.coerce.number().int().min(1024).default(256 * 1024 * 1024),
  /**
   * How long a job stays claimed without a heartbeat; after a crash its job is taken again (and
   * resumes from its checkpoint) once this has passed.
   */
  leaseMs: z.coerce.number().int().min(500).max(3_600_000).default(30_000),
});
export type Config = z.infer<typeof Config>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

const FLAG_FOR: Record<string, string> = {
  port: "--port / SPLICE_PORT",
  host: "--host / SPLICE_HOST",
  dataDir: "--data-dir / SPLICE_DATA_DIR",
  databaseUrl: "DATABASE_URL",
  roots: "SPLICE_ROOTS",
  token: "SPLICE_TOKEN",
  maxBodyBytes: "--max-body-bytes / SPLICE_MAX_BODY_BYTES",
  leaseMs: "SPLICE_LEASE_MS",
};

export function loadConfig(args: string[], env: Record<string, string | undefined>): Config {
  let flags;
  try {
    flags = parseArgs({
      args,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "data-dir": { type: "string" },
        "max-body-bytes": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new ConfigError(
      `${(e as Error).message}. Flags: --port, --host, --data-dir, --max-body-bytes.`,
    );
  }
  const raw = {
    port: flags.port ?? env.SPLICE_PORT,
    host: flags.host ?? env.SPLICE_HOST,
    dataDir: flags["data-dir"] ?? env.SPLICE_DATA_DIR,
    databaseUrl: env.DATABASE_URL || undefined,
    roots: env.SPLICE_ROOTS ? env.SPLICE_ROOTS.split(":").filter(Boolean) : undefined,
    token: env.SPLICE_TOKEN || undefined,
    maxBodyBytes: flags["max-body-bytes"] ?? env.SPLICE_MAX_BODY_BYTES,
    leaseMs: env.SPLICE_LEASE_MS,
  };
  const r = Config.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = String(issue.path[0]);
    // A secret is never echoed: it would land in logs and terminals.
    const given = key === "token" ? undefined : (raw as Record<string, unknown>)[key];
    throw new ConfigError(
      `bad setting ${FLAG_FOR[key] ?? key}${
        given !== undefined ? ` = ${JSON.stringify(given)}` : ""
      }: ` +
        `${issue.message}`,
    );
  }
  return r.data;
}
