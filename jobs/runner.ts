// The job runner: one worker per process by default. It claims jobs from the store (leases with
// heartbeats, so several processes can share one PostgreSQL queue), runs the handler of the job's
// kind, and publishes state/progress/metrics/result/error events. A job whose process died is
// claimed again when its lease expires and resumes from its last checkpoint, a bounded number of
// times: a job that kills its process (out of memory) fails instead of crash-looping the fleet.
import type { EventHub, EventType, JobEvent } from "./events.ts";
import type { JobRecord, JobStore } from "./types.ts";

export class JobCancelled extends Error {
  override name = "JobCancelled";
}

/** Another worker holds the job now; this one stops without touching its record. */
export class LeaseLost extends Error {
  override name = "LeaseLost";
}

/** Claims of one job (its first run plus resumes after its process died) before it is failed. */
export const DEFAULT_MAX_ATTEMPTS = 3;

export interface JobContext {
  job: JobRecord;
  /** Aborted when the job is cancelled; handlers check it at least once per step. */
  signal: AbortSignal;
  emit(type: Exclude<EventType, "state">, data: unknown): Promise<void>;
  /** Throws JobCancelled if the job was cancelled. */
  throwIfCancelled(): void;
  /** Records where the job keeps its checkpoints (kept for resume). */
  setCheckpoint(path: string): Promise<void>;
}

export type JobHandler = (ctx: JobContext) => Promise<unknown>;

export interface RunnerOptions {
  owner?: string;
  leaseMs?: number;
  pollMs?: number;
  /** How often a running job checks the store for a cancel request made by another process. */
  cancelPollMs?: number;
  /** Claims of a job before it is failed (its process died every time); default 3. */
  maxAttempts?: number;
}

export class JobRunner {
  readonly owner: string;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly maxAttempts: number;
  #handlers = new Map<string, JobHandler>();
  #running = new Map<string, AbortController>();
  #stopped = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;

  constructor(readonly store: JobStore, readonly events: EventHub, opts: RunnerOptions = {}) {
    this.owner = opts.owner ?? `${Deno.hostname()}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.pollMs = opts.pollMs ?? 1000;
    this.maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  register(kind: string, handler: JobHandler): void {
    this.#handlers.set(kind, handler);
  }

  get kinds(): string[] {
    return [...this.#handlers.keys()];
  }

  async submit(kind: string, config: unknown): Promise<JobRecord> {
    if (!this.#handlers.has(kind)) {
      throw new Error(`unknown job kind "${kind}" (known: ${this.kinds.join(", ")})`);
    }
    const job = await this.store.insert({ id: crypto.randomUUID(), kind, config });
    await this.events.publish(job.id, "state", { state: "queued" });
    this.#wake?.();
    return job;
  }

  /** Requests cancellation: a queued job is cancelled at once, a running one within a step. */
  async cancel(id: string): Promise<JobRecord | null> {
    const job = await this.store.get(id);
    if (!job) return null;
    if (job.state === "queued") {
      await this.store.update(id, { state: "cancelled", finishedAt: new Date() });
      await this.events.publish(id, "state", { state: "cancelled" });
    } else if (job.state === "running") {
      await this.store.update(id, { cancelRequested: true });
      this.#running.get(id)?.abort(new JobCancelled(`job ${id} was cancelled`));
    }
    return await this.store.get(id);
  }

  start(): void {
    if (this.#loop) return;
    this.#stopped = false;
    this.#loop = this.#run();
  }

  /** Stops taking jobs and aborts running ones; their leases lapse and another start resumes them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#running.values()) c.abort(new Error("the service is shutting down"));
    this.#wake?.();
    await this.#loop;
    this.#loop = null;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const job = await this.store.claim(this.owner, this.leaseMs, this.kinds);
      if (!job) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, this.pollMs);
          this.#wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.#wake = null;
        continue;
      }
      try {
        await this.#execute(job);
      } catch (e) {
        // The database failed under the job's bookkeeping; its lease lapses and it is taken again.
        console.error(`splice: job ${job.id} could not be run: ${(e as Error).message}`);
      }
    }
  }

  async #execute(job: JobRecord): Promise<void> {
    if (job.attempts > this.maxAttempts) return await this.#giveUp(job);
    const resumed = job.checkpoint !== null;
    // A resumed job re-runs the steps after its last checkpoint; their metrics and progress events
    // are already in the history, so they are not published twice.
    const seen = lastSteps(await this.events.store.after(job.id, 0));
    await this.events.publish(job.id, "state", { state: "running", resumed, owner: this.owner });
    const ctl = new AbortController();
    this.#running.set(job.id, ctl);
    const beat = setInterval(async () => {
      try {
        const fresh = await this.store.get(job.id);
        if (fresh?.cancelRequested) ctl.abort(new JobCancelled(`job ${job.id} was cancelled`));
        if (!(await this.store.heartbeat(job.id, this.owner, this.leaseMs))) {
          ctl.abort(new LeaseLost(`job ${job.id}: lease lost to another worker`));
        }
      } catch (e) {
        console.error(`splice: heartbeat of job ${job.id} failed: ${(e as Error).message}`);
      }
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    const ctx: JobContext = {
      job,
      signal: ctl.signal,
      emit: async (type, data) => {
        if (alreadyEmitted(seen, type, data)) return;
        await this.events.publish(job.id, type, data);
      },
      throwIfCancelled: () => {
        if (ctl.signal.aborted) throw ctl.signal.reason ?? new JobCancelled("cancelled");
      },
      setCheckpoint: async (path) => {
        job.checkpoint = path;
        await this.store.update(job.id, { checkpoint: path });
      },
    };
    try {
      const result = await this.#handlers.get(job.kind)!(ctx);
      await this.store.update(job.id, {
        state: "succeeded",
        result,
        finishedAt: new Date(),
        leaseOwner: null,
      });
      await this.events.publish(job.id, "result", result);
      await this.events.publish(job.id, "state", { state: "succeeded" });
    } catch (e) {
      const err = e as Error;
      if (ctl.signal.reason instanceof LeaseLost) {
        // The job's record and history belong to the worker that took it over.
        console.error(`splice: ${ctl.signal.reason.message}; stopped working on it`);
      } else if (this.#stopped && !(err instanceof JobCancelled)) {
        // Shutting down: leave the job running with an expired lease so a restart resumes it; a
        // pause is not a failed attempt.
        await this.store.update(job.id, {
          leaseExpires: new Date(0),
          attempts: Math.max(0, job.attempts - 1),
        });
        await this.events.publish(job.id, "log", {
          message: "paused by shutdown; resumes on restart",
        });
      } else if (err instanceof JobCancelled || (await this.store.get(job.id))?.cancelRequested) {
        await this.store.update(job.id, {
          state: "cancelled",
          finishedAt: new Date(),
          leaseOwner: null,
        });
        await this.events.publish(job.id, "state", { state: "cancelled" });
      } else {
        await this.#fail(job, (e as Error)?.message ?? String(e));
      }
    } finally {
      clearInterval(beat);
      this.#running.delete(job.id);
    }
  }

  async #giveUp(job: JobRecord): Promise<void> {
    const message = `job ${job.id} was started ${job.attempts - 1} times and its process ended ` +
      `each time before the job finished (killed, or out of memory: compare the job's sizes with ` +
      `the host's memory); it is not retried again`;
    await this.#fail(job, message);
  }

  /** Ends the job as failed with `message`, kept in the job and published. */
  async #fail(job: JobRecord, message: string): Promise<void> {
    await this.store.update(job.id, {
      state: "failed",
      error: message,
      finishedAt: new Date(),
      leaseOwner: null,
    });
    await this.events.publish(job.id, "error", { message });
    await this.events.publish(job.id, "state", { state: "failed", error: message });
  }
}

const STEPPED: ReadonlySet<string> = new Set(["metrics", "progress"]);

function stepKey(type: string, data: unknown): [string, number] | null {
  if (!STEPPED.has(type) || typeof data !== "object" || data === null) return null;
  const { step, arm } = data as { step?: unknown; arm?: unknown };
  return typeof step === "number" ? [`${type}\u0000${arm ?? ""}`, step] : null;
}

/** The largest step of each (type, arm) among a job's metrics and progress events. */
function lastSteps(history: JobEvent[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of history) {
    const k = stepKey(e.type, e.data);
    if (k) out.set(k[0], Math.max(out.get(k[0]) ?? 0, k[1]));
  }
  return out;
}

function alreadyEmitted(seen: Map<string, number>, type: string, data: unknown): boolean {
  const k = stepKey(type, data);
  return k !== null && k[1] <= (seen.get(k[0]) ?? 0);
}
