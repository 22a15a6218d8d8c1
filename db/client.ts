// Opens the database: embedded PGlite persisted under the data directory by default, PostgreSQL
// when a URL is given (several service processes can then share one job queue). Migrations from
// db/migrations/ are applied on open.
import { PGlite } from "@electric-sql/pglite";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "./schema.ts";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "pglite" | "postgres";
  /** Where the data lives: a directory (PGlite) or the server's host and database (no password). */
  location: string;
  close(): Promise<void>;
}

const MIGRATIONS = new URL("./migrations", import.meta.url).pathname;

export interface OpenOptions {
  /** PGlite's directory; `memory://` for a throw-away database. */
  dataDir?: string;
  /** postgres://… — when set, PostgreSQL is used instead of PGlite. */
  url?: string;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.url) {
    try {
      await migrateOnce(opts.url);
    } catch (e) {
      throw new Error(`cannot open PostgreSQL at ${redact(opts.url)}: ${(e as Error).message}`);
    }
    const client = postgres(opts.url, { max: 8, onnotice: () => {} });
    const db = drizzlePostgres(client, { schema }) as unknown as Db;
    return {
      db,
      kind: "postgres",
      location: redact(opts.url),
      close: () => client.end({ timeout: 5 }),
    };
  }
  const dir = opts.dataDir ?? "memory://";
  if (!dir.startsWith("memory://")) await Deno.mkdir(dir, { recursive: true });
  const client = new PGlite(dir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  await migratePglite(db as never, { migrationsFolder: MIGRATIONS });
  return { db, kind: "pglite", location: dir, close: () => client.close() };
}

/**
 * Applies migrations under a PostgreSQL advisory lock on one connection, so several service
 * processes starting at once on a fresh database do not race to create the same tables.
 */
async function migrateOnce(url: string): Promise<void> {
  const client = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await client`SELECT pg_advisory_lock(7217700)`;
    try {
      await migratePostgres(drizzlePostgres(client, { schema }) as never, {
        migrationsFolder: MIGRATIONS,
      });
    } finally {
      await client`SELECT pg_advisory_unlock(7217700)`;
    }
  } finally {
    await client.end({ timeout: 1 });
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = u.password ? "***" : "";
    return u.toString();
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}
