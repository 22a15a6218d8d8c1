// Job events: every event a job emits gets the next id of that job, is persisted, and is fanned
// out to live subscribers. The store allocates the id as it persists the event, so processes
// sharing a database never hand out the same id (a process that takes over another's job
// continues its history instead of colliding with it). A subscriber that names the last id it saw
// (SSE Last-Event-ID) first gets the persisted history after that id, then live events, with no
// gap and no duplicate.

export type EventType = "state" | "progress" | "metrics" | "log" | "result" | "error";

export interface JobEvent {
  jobId: string;
  id: number;
  type: EventType;
  data: unknown;
}

/** Where events are kept (the job_events table; an in-memory one for tests). */
export interface EventStore {
  /**
   * Persists an event under the job's next id, allocated atomically with the write (one past the
   * largest id any process has stored for the job), and returns it.
   */
  add(jobId: string, type: EventType, data: unknown): Promise<JobEvent>;
  /** Events of a job with id > afterId, in id order. */
  after(jobId: string, afterId: number): Promise<JobEvent[]>;
}

export class MemoryEventStore implements EventStore {
  #events = new Map<string, JobEvent[]>();
  add(jobId: string, type: EventType, data: unknown): Promise<JobEvent> {
    const list = this.#events.get(jobId) ?? [];
    const event = { jobId, id: (list.at(-1)?.id ?? 0) + 1, type, data };
    list.push(event);
    this.#events.set(jobId, list);
    return Promise.resolve(event);
  }
  after(jobId: string, afterId: number): Promise<JobEvent[]> {
    return Promise.resolve((this.#events.get(jobId) ?? []).filter((e) => e.id > afterId));
  }
}

const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

/** True for the event after which a job emits nothing more. */
export function isFinal(e: JobEvent): boolean {
  return e.type === "state" && TERMINAL.has((e.data as { state?: string })?.state ?? "");
}

type Listener = (e: JobEvent) => void;

export class EventHub {
  #listeners = new Map<string, Set<Listener>>();
  // Appends are chained per job so ids reach the store in order even when callers do not await.
  #tail = new Map<string, Promise<void>>();

  /**
   * pollMs: how often a waiting subscriber also reads the store, which is how it sees events of a
   * job that another service process (sharing the database) is running.
   */
  constructor(readonly store: EventStore, readonly pollMs = 1000) {}

  /** Persists under the next id, then notifies live subscribers. */
  async publish(jobId: string, type: EventType, data: unknown): Promise<JobEvent> {
    const prev = this.#tail.get(jobId) ?? Promise.resolve();
    let event!: JobEvent;
    const done = prev.then(async () => {
      event = await this.store.add(jobId, type, data);
      for (const l of this.#listeners.get(jobId) ?? []) l(event);
    });
    this.#tail.set(jobId, done.catch(() => {}));
    await done;
    return event;
  }

  /**
   * Yields events of a job with id > afterId: history first, then live ones, until the job's final
   * state event or until `signal` aborts.
   */
  async *subscribe(jobId: string, afterId = 0, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const queue: JobEvent[] = [];
    let wake: (() => void) | null = null;
    const listener: Listener = (e) => {
      queue.push(e);
      wake?.();
    };
    // Listen before reading history so nothing published in between is missed; drop duplicates.
    let listeners = this.#listeners.get(jobId);
    if (!listeners) this.#listeners.set(jobId, listeners = new Set());
    listeners.add(listener);
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    try {
      let last = afterId;
      for (const e of await this.store.after(jobId, afterId)) {
        yield e;
        last = e.id;
        if (isFinal(e)) return;
      }
      while (!signal?.aborted) {
        if (!queue.length) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const woke = await new Promise<boolean>((r) => {
            wake = () => r(true);
            timer = setTimeout(() => r(false), this.pollMs);
          });
          clearTimeout(timer);
          wake = null;
          if (!woke && !signal?.aborted) queue.push(...await this.store.after(jobId, last));
          continue;
        }
        const e = queue.shift()!;
        if (e.id <= last) continue;
        yield e;
        last = e.id;
        if (isFinal(e)) return;
      }
    } finally {
      listeners.delete(listener);
      if (!listeners.size) this.#listeners.delete(jobId);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  subscriberCount(jobId: string): number {
    return this.#listeners.get(jobId)?.size ?? 0;
  }
}
