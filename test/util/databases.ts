// Fresh, empty databases of each kind for tests: PGlite always, PostgreSQL too when
// SPLICE_TEST_DATABASE_URL is set (.ci/run starts a server on loopback and sets it).
import { sql } from "drizzle-orm";
import { type Database, openDatabase } from "../../db/client.ts";

export const pgUrl = Deno.env.get("SPLICE_TEST_DATABASE_URL");

export interface TestDatabase {
  /** Opens another connection to the same database, as a second service process would. */
  connect(): Promise<Database>;
  cleanup(): Promise<void>;
}

export const databaseKinds: { name: string; create: () => Promise<TestDatabase> }[] = [{
  name: "pglite",
  create: async () => {
    // PGlite is single-process: the "second connection" is the same handle.
    const dir = await Deno.makeTempDir();
    const d = await openDatabase({ dataDir: dir });
    return {
      connect: () => Promise.resolve({ ...d, close: () => Promise.resolve() }),
      cleanup: async () => {
        await d.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
}];

if (pgUrl) {
  databaseKinds.push({
    name: "postgres",
    create: async () => {
      const name = `splice_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
      const admin = await openDatabase({ url: pgUrl });
      await admin.db.execute(sql.raw(`CREATE DATABASE ${name}`));
      await admin.close();
      const u = new URL(pgUrl);
      u.pathname = `/${name}`;
      return {
        connect: () => openDatabase({ url: u.toString() }),
        cleanup: async () => {
          const a = await openDatabase({ url: pgUrl });
          await a.db.execute(sql.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
          await a.close();
        },
      };
    },
  });
}
