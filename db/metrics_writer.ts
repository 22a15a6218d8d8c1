// Metrics rows are written in batches: a fine-tune logs every few steps, and one INSERT per row
// would cost more than the step on a fast GPU. flush() is awaited before each checkpoint is
// written and at the end: a resumed job restarts after its newest checkpoint, so every row that
// checkpoint covers must already be in the database. Rows are keyed by (job, step); a re-run step
// does not write its row twice.
import type { Db } from "./client.ts";
import { metrics } from "./schema.ts";

export interface MetricRow {
  jobId: string;
  step: number;
  tokens?: number;
  values: Record<string, number>;
}

export class MetricsWriter {
  #rows: MetricRow[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  #flushing: Promise<void> = Promise.resolve();

  constructor(readonly db: Db, readonly maxRows = 64, readonly maxDelayMs = 2000) {}

  add(row: MetricRow): void {
    this.#rows.push(row);
    if (this.#rows.length >= this.maxRows) this.#background();
    else this.#timer ??= setTimeout(() => this.#background(), this.maxDelayMs);
  }

  /**
   * Writes everything added so far; resolves when it is in the database. A failed write keeps its
   * rows for the next flush and rejects, so a checkpoint waiting on it is not written.
   */
  flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const rows = this.#rows;
    this.#rows = [];
    const write = this.#flushing.catch(() => {}).then(async () => {
      if (!rows.length) return;
      try {
        await this.db.insert(metrics).values(rows).onConflictDoNothing();
      } catch (e) {
        this.#rows.unshift(...rows);
        throw e;
      }
    });
    this.#flushing = write;
    return write;
  }

  /** A flush nobody awaits: its failure is logged (the rows stay queued), not unhandled. */
  #background(): void {
    this.flush().catch((e) =>
      console.error(`splice: writing metric rows failed (kept for the next flush): ${e.message}`)
    );
  }

  get pending(): number {
    return this.#rows.length;
  }
}
