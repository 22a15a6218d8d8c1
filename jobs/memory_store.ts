// An in-memory JobStore with the same claim semantics as the database one (tests, dry runs).
import type { JobRecord, JobStore } from "./types.ts";

export class MemoryJobStore implements JobStore {
  #jobs = new Map<string, JobRecord>();

  insert(job: { id: string; kind: string; config: unknown }): Promise<JobRecord> {
    const rec: JobRecord = {
      ...job,
      state: "queued",
      result: null,
      error: null,
      checkpoint: null,
      cancelRequested: false,
      attempts: 0,
      leaseOwner: null,
      leaseExpires: null,
      createdAt: new Date(),
      startedAt: null,
      finishedAt: null,
    };
    this.#jobs.set(job.id, rec);
    return Promise.resolve({ ...rec });
  }

  get(id: string): Promise<JobRecord | null> {
    const r = this.#jobs.get(id);
    return Promise.resolve(r ? { ...r } : null);
  }

  list(opts: { kind?: string; limit?: number } = {}): Promise<JobRecord[]> {
    const all = [...this.#jobs.values()].filter((j) => !opts.kind || j.kind === opts.kind);
    all.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    return Promise.resolve(all.slice(0, opts.limit ?? 100).map((j) => ({ ...j })));
  }

  claim(owner: string, leaseMs: number, kinds: string[]): Promise<JobRecord | null> {
    const now = Date.now();
    const candidates = [...this.#jobs.values()]
      .filter((j) => kinds.includes(j.kind))
      .filter((j) =>
        j.state === "queued" ||
        (j.state === "running" && (j.leaseExpires?.getTime() ?? 0) < now)
      )
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    const j = candidates[0];
    if (!j) return Promise.resolve(null);
    j.state = "running";
    j.attempts++;
    j.leaseOwner = owner;
    j.leaseExpires = new Date(now + leaseMs);
    j.startedAt ??= new Date(now);
    return Promise.resolve({ ...j });
  }

  heartbeat(id: string, owner: string, leaseMs: number): Promise<boolean> {
    const j = this.#jobs.get(id);
    if (!j || j.leaseOwner !== owner || j.state !== "running") return Promise.resolve(false);
    j.leaseExpires = new Date(Date.now() + leaseMs);
    return Promise.resolve(true);
  }

  update(id: string, patch: Partial<JobRecord>): Promise<void> {
    const j = this.#jobs.get(id);
    if (!j) return Promise.reject(new Error(`job ${id} not found`));
    Object.assign(j, patch);
    return Promise.resolve();
  }
}
