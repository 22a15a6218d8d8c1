// JobStore and EventStore over the database. claim() uses FOR UPDATE SKIP LOCKED, so processes
// sharing one PostgreSQL each take a different job; a job whose lease lapsed (its process died) is
// taken again and resumes from its checkpoint.
import { and, asc, desc, eq, gt, sql } from "drizzle-orm";
import type { EventStore, EventType, JobEvent } from "./events.ts";
import type { JobRecord, JobState, JobStore } from "./types.ts";
import type { Db } from "../db/client.ts";
import { jobEvents, jobs } from "../db/schema.ts";

type Row = typeof jobs.$inferSelect;

function toRecord(r: Row): JobRecord {
  return { ...r, state: r.state as JobState };
}

export class DbJobStore implements JobStore {
  constructor(readonly db: Db) {}

  async insert(job: { id: string; kind: string; config: unknown }): Promise<JobRecord> {
    const [r] = await this.db.insert(jobs).values({ ...job, state: "queued" }).returning();
    return toRecord(r);
  }

  async get(id: string): Promise<JobRecord | null> {
    const [r] = await this.db.select().from(jobs).where(eq(jobs.id, id));
    return r ? toRecord(r) : null;
  }

  async list(opts: { kind?: string; limit?: number } = {}): Promise<JobRecord[]> {
    const q = this.db.select().from(jobs).$dynamic();
    if (opts.kind) q.where(eq(jobs.kind, opts.kind));
    const rows = await q.orderBy(desc(jobs.createdAt)).limit(opts.limit ?? 100);
    return rows.map(toRecord);
  }

  async claim(owner: string, leaseMs: number, kinds: string[]): Promise<JobRecord | null> {
    if (!kinds.length) return null;
    const kindList = sql.join(kinds.map((k) => sql`${k}`), sql`, `);
    const rows = await this.db.execute(sql`
      UPDATE jobs SET state = 'running', lease_owner = ${owner}, attempts = attempts + 1,
        lease_expires = now() + (${leaseMs}::int * interval '1 millisecond'),
        started_at = coalesce(started_at, now())
      WHERE id = (
        SELECT id FROM jobs
        WHERE kind IN (${kindList})
          AND (state = 'queued' OR (state = 'running' AND lease_expires < now()))
        ORDER BY created_at
        FOR UPDATE SKIP LOCKED
        LIMIT 1)
      RETURNING id`);
    const list = (rows as unknown as { rows?: { id: string }[] }).rows ??
      (rows as unknown as { id: string }[]);
    const id = list[0]?.id;
    return id ? await this.get(id) : null;
  }

  async heartbeat(id: string, owner: string, leaseMs: number): Promise<boolean> {
    const r = await this.db.update(jobs)
      .set({ leaseExpires: sql`now() + (${leaseMs}::int * interval '1 millisecond')` })
      .where(and(eq(jobs.id, id), eq(jobs.leaseOwner, owner), eq(jobs.state, "running")))
      .returning({ id: jobs.id });
    return r.length > 0;
  }

  async update(id: string, patch: Partial<JobRecord>): Promise<void> {
    const { id: _id, kind: _k, createdAt: _c, ...rest } = patch;
    if (!Object.keys(rest).length) return;
    await this.db.update(jobs).set(rest).where(eq(jobs.id, id));
  }
}

export class DbEventStore implements EventStore {
  constructor(readonly db: Db) {}

  /**
   * The id is max+1 computed inside the INSERT. Two processes adding to one job at once can both
   * compute the same id; the primary key lets one win and the other retries with a fresh max, so
   * ids stay dense and reach the table in order (a reader never sees id n+1 before n commits).
   */
  async add(jobId: string, type: EventType, data: unknown): Promise<JobEvent> {
    const json = data === undefined || data === null ? null : JSON.stringify(data);
    for (let attempt = 1;; attempt++) {
      try {
        const rows = await this.db.execute(sql`
          INSERT INTO job_events (job_id, seq, type, data)
          SELECT ${jobId}, coalesce(max(seq), 0) + 1, ${type}, ${json}::jsonb
          FROM job_events WHERE job_id = ${jobId}
          RETURNING seq`);
        const list = (rows as unknown as { rows?: { seq: number }[] }).rows ??
          (rows as unknown as { seq: number }[]);
        return { jobId, id: Number(list[0].seq), type, data: data ?? null };
      } catch (e) {
        if (attempt >= MAX_ID_RACES || !isUniqueViolation(e)) throw e;
      }
    }
  }

  async after(jobId: string, afterId: number): Promise<JobEvent[]> {
    const rows = await this.db.select().from(jobEvents)
      .where(and(eq(jobEvents.jobId, jobId), gt(jobEvents.seq, afterId)))
      .orderBy(asc(jobEvents.seq));
    return rows.map((r) => ({
      jobId: r.jobId,
      id: r.seq,
      type: r.type as EventType,
      data: r.data,
    }));
  }
}

/** More writers than this racing for one job's next id means something else is wrong. */
const MAX_ID_RACES = 50;

function isUniqueViolation(e: unknown): boolean {
  // Drizzle wraps the driver's error; PostgreSQL and PGlite both report SQLSTATE 23505.
  for (let c = e as { code?: string; cause?: unknown } | undefined; c; c = c.cause as typeof c) {
    if (c.code === "23505") return true;
  }
  return false;
}
