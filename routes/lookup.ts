// Finding what a route's `:id` names, or answering 404 with what it is.
import { eq } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { JobRecord } from "../jobs/types.ts";
import type { AppDeps } from "./deps.ts";
import { notFound } from "./errors.ts";

/** The job with this id, if it is of `kind` (a fine-tune id is no evaluation). */
export function jobOfKind(deps: AppDeps, kind: string, what: string) {
  return async (id: string): Promise<JobRecord> => {
    const j = await deps.runner.store.get(id);
    if (!j || j.kind !== kind) throw notFound(what, id);
    return j;
  };
}

/** The row of `table` with this id. */
export function rowById<T extends PgTable & { id: PgColumn }>(
  deps: AppDeps,
  table: T,
  what: string,
) {
  return async (id: string): Promise<T["$inferSelect"]> => {
    const [row] = await deps.database.db.select().from(table as PgTable).where(eq(table.id, id));
    if (!row) throw notFound(what, id);
    return row as T["$inferSelect"];
  };
}
