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
    const client = postgres(opts.url, { max: 8, onnotice: () => {} });
    const db = drizzlePostgres(client, { schema }) as unknown as Db;
    try {
      await migratePostgres(db as never, { migrationsFolder: MIGRATIONS });
    } catch (e) {
      await client.end({ timeout: 1 });
      throw new Error(`cannot open PostgreSQL at ${redact(opts.url)}: ${(e as Error).message}`);
    }
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

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = u.password ? "***" : "";
    return u.toString();
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}
