// An experiment job's row in `experiments`: the route inserts it too, and whichever comes first
// makes it, so it exists before results are saved. The stored result is what a restarted job
// reads back to skip the arms or runs it has finished.
import { eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { experiments } from "../db/schema.ts";

export async function experimentRow<R>(
  db: Db,
  jobId: string,
  cfg: { name: string },
): Promise<{ stored: R | null; save: (result: R) => Promise<void> }> {
  await db.insert(experiments).values({ id: jobId, name: cfg.name, jobId, config: cfg })
    .onConflictDoNothing();
  const [row] = await db.select().from(experiments).where(eq(experiments.jobId, jobId));
  return {
    stored: (row?.result as R | null) ?? null,
    save: async (result) => {
      await db.update(experiments).set({ result }).where(eq(experiments.jobId, jobId));
    },
  };
}
