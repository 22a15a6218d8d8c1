// A job's record and the store that keeps it (the jobs table; an in-memory one for tests).

export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface JobRecord {
  id: string;
  kind: string;
  state: JobState;
  config: unknown;
  result: unknown;
  error: string | null;
  /** Directory of the job's checkpoints and artifacts. */
  checkpoint: string | null;
  cancelRequested: boolean;
  /** Claims so far, this one included. */
  attempts: number;
  leaseOwner: string | null;
  leaseExpires: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface JobStore {
  insert(job: { id: string; kind: string; config: unknown }): Promise<JobRecord>;
  get(id: string): Promise<JobRecord | null>;
  list(opts?: { kind?: string; limit?: number }): Promise<JobRecord[]>;
  /**
   * Atomically takes the oldest queued job, or a running one whose lease has expired (its process
   * died), for `owner` until `leaseMs` from now. PostgreSQL: FOR UPDATE SKIP LOCKED.
   */
  claim(owner: string, leaseMs: number, kinds: string[]): Promise<JobRecord | null>;
  /** Extends the lease; false if the job is no longer ours. */
  heartbeat(id: string, owner: string, leaseMs: number): Promise<boolean>;
  update(id: string, patch: Partial<Omit<JobRecord, "id" | "kind" | "createdAt">>): Promise<void>;
}

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(["succeeded", "failed", "cancelled"]);
