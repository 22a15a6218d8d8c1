// Metrics rows are written in batches: a fine-tune logs every few steps, and one INSERT per row
// would cost more than the step on a fast GPU. flush() is awaited at checkpoints and at the end,
// so no row written before a checkpoint is lost if the process dies after it.
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
    if (this.#rows.length >= this.maxRows) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), this.maxDelayMs);
  }

  /** Writes everything added so far; resolves when it is in the database. */
  flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const rows = this.#rows;
    this.#rows = [];
    this.#flushing = this.#flushing.then(async () => {
      if (!rows.length) return;
      await this.db.insert(metrics).values(rows).onConflictDoNothing();
    });
    return this.#flushing;
  }

  get pending(): number {
    return this.#rows.length;
  }
}
