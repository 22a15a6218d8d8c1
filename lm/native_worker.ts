// One native ONNX Runtime session in a worker of its own, both ends: the client the main thread
// calls and the handler the worker runs. onnxruntime-node's `run` computes synchronously on the
// thread that calls it, so on the main thread a 10 s training step would stall every timer, lease
// heartbeat and HTTP answer of the service; here the main thread only posts feeds and awaits
// outputs. One worker per session rather than one per process: `release()` ends exactly that
// session's thread and memory, and two sessions (two jobs, or a fleet worker's eval beside its
// training) compute side by side, where a shared worker would queue one behind the other; each
// session has its own intra-op thread pool either way. The cost is a worker start per session
// (≈ 0.1 s) and one V8 isolate each. A session not released keeps its worker, and so the process,
// alive.
import { loadNativeOrt } from "./native_ort.ts";

/** A tensor as it crosses threads: plain fields, its typed array's buffer transferred. */
export interface WireTensor {
  type: string;
  /** A string tensor's array is cloned; every other tensor's is a typed array. */
  data: ArrayBufferView | string[];
  dims: readonly number[];
}

export interface NativeCreateOptions {
  executionProviders: string[];
  intraOpNumThreads: number;
  graphOptimizationLevel: "all";
  logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  extra?: { session: { intra_op: { allow_spinning: "0" | "1" } } };
}

type Request =
  | { kind: "create"; model: Uint8Array | string; options: NativeCreateOptions }
  | { kind: "run"; id: number; feeds: Record<string, WireTensor> }
  | { kind: "release"; id: number };

type Reply =
  | { kind: "created"; inputNames: string[]; outputNames: string[] }
  | { kind: "done"; id: number; outputs?: Record<string, WireTensor> }
  | { kind: "error"; id?: number; message: string };

/**
 * The tensors as they cross, and the buffers to transfer. With `copy`, each array is copied first
 * so the caller's stays usable (a transferred buffer is detached where it came from); otherwise a
 * whole-buffer array moves as it is, and only a view into a larger or shared buffer is copied.
 */
export function toWire(
  tensors: Record<string, WireTensor>,
  copy: boolean,
): { wire: Record<string, WireTensor>; transfer: ArrayBuffer[] } {
  const wire: Record<string, WireTensor> = {};
  const transfer = new Set<ArrayBuffer>();
  for (const [name, t] of Object.entries(tensors)) {
    if (Array.isArray(t.data)) {
      wire[name] = { type: t.type, data: t.data, dims: [...t.dims] };
      continue;
    }
    let data = t.data as ArrayBufferView & { slice(): ArrayBufferView };
    const buf = data.buffer;
    const movable = buf instanceof ArrayBuffer && !buf.resizable && !transfer.has(buf) &&
      data.byteOffset === 0 && data.byteLength === buf.byteLength;
    if (copy || !movable) data = data.slice() as typeof data;
    transfer.add(data.buffer as ArrayBuffer);
    wire[name] = { type: t.type, data, dims: [...t.dims] };
  }
  return { wire, transfer: [...transfer] };
}

/** What the main thread holds: the session's names, `run` and `release`. */
export interface NativeWorkerSession {
  inputNames: string[];
  outputNames: string[];
  run(feeds: Record<string, WireTensor>): Promise<Record<string, WireTensor>>;
  release(): Promise<void>;
}

/**
 * Starts a worker and creates the session in it. `WorkerCtor` is the web Worker: the caller keeps
 * it, because ORT Web's wasm glue replaces globalThis.Worker with Node's. `owned` model bytes are
 * transferred, a caller's are copied.
 */
export function startNativeWorker(
  WorkerCtor: typeof Worker,
  model: Uint8Array | string,
  owned: boolean,
  options: NativeCreateOptions,
): Promise<NativeWorkerSession> {
  const worker = new WorkerCtor(import.meta.url, { type: "module" });
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | undefined; // once set, every call rejects with it
  let closing: Promise<void> | undefined;
  const released = () =>
    new Error(
      "this native ONNX Runtime session was released (release() was called); " +
        "create a new session to run the model again",
    );
  const fail = (e: Error) => {
    dead ??= e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
    worker.terminate();
  };
  const call = (req: Request, transfer: Transferable[] = []) =>
    new Promise<Reply>((resolve, reject) => {
      if (dead) return reject(dead);
      pending.set("id" in req ? req.id : 0, { resolve, reject });
      worker.postMessage(req, { transfer });
    });
  worker.onmessage = (e: MessageEvent<Reply>) => {
    const r = e.data;
    const id = r.kind === "created" ? 0 : r.id ?? 0;
    const p = pending.get(id);
    pending.delete(id);
    if (r.kind === "error") p?.reject(new Error(r.message));
    else p?.resolve(r);
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault(); // else Deno ends the whole process on a worker's uncaught error
    fail(new Error(`the native ONNX Runtime worker failed: ${e.message}`));
  };
  worker.onmessageerror = () =>
    fail(new Error("the native ONNX Runtime worker sent an unreadable message"));

  const buf = typeof model === "string" ? undefined : model.buffer;
  const transfer = owned && buf instanceof ArrayBuffer && typeof model !== "string" &&
      model.byteOffset === 0 && model.byteLength === buf.byteLength
    ? [buf]
    : [];
  return call({ kind: "create", model, options }, transfer).then(
    (r) => {
      const { inputNames, outputNames } = r as Extract<Reply, { kind: "created" }>;
      return {
        inputNames,
        outputNames,
        run: async (feeds) => {
          if (closing) throw released();
          const { wire, transfer } = toWire(feeds, true);
          const r = await call(
            { kind: "run", id: nextId++, feeds: wire },
            transfer as Transferable[],
          );
          return (r as Extract<Reply, { kind: "done" }>).outputs!;
        },
        release: () => {
          // A worker that already failed has ended: nothing is left to free.
          closing ??= dead ? Promise.resolve() : call({ kind: "release", id: nextId++ }).then(
            () => fail(released()),
            (e) => {
              fail(released());
              throw e;
            },
          );
          return closing;
        },
      };
    },
    (e) => {
      fail(e);
      throw e;
    },
  );
}

// The worker's side (the main thread imports this module for the client only). It handles one
// request at a time: a release must not free the session under a run still waiting for its turn.
if ("WorkerGlobalScope" in globalThis) {
  type Session = Awaited<ReturnType<NativeOrt["InferenceSession"]["create"]>>;
  type NativeOrt = Awaited<ReturnType<typeof loadNativeOrt>>;
  const scope = self as unknown as {
    postMessage(msg: Reply, opts?: { transfer: Transferable[] }): void;
    onmessage: (e: MessageEvent<Request>) => void;
  };
  let session: Session | undefined;
  const handle = async (req: Request): Promise<void> => {
    try {
      const native = await loadNativeOrt();
      if (req.kind === "create") {
        // The overloads take a path or bytes, not their union.
        session = typeof req.model === "string"
          ? await native.InferenceSession.create(req.model, req.options)
          : await native.InferenceSession.create(req.model, req.options);
        scope.postMessage({
          kind: "created",
          inputNames: [...session.inputNames],
          outputNames: [...session.outputNames],
        });
      } else if (req.kind === "run") {
        if (!session) throw new Error("the native session was not created");
        const feeds: Record<string, InstanceType<NativeOrt["Tensor"]>> = {};
        for (const [name, t] of Object.entries(req.feeds)) {
          feeds[name] = new native.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
        }
        const { wire, transfer } = toWire(
          await session.run(feeds) as Record<string, WireTensor>,
          false,
        );
        scope.postMessage({ kind: "done", id: req.id, outputs: wire }, {
          transfer: transfer as Transferable[],
        });
      } else {
        await session?.release();
        session = undefined;
        scope.postMessage({ kind: "done", id: req.id });
      }
    } catch (err) {
      const id = req.kind === "create" ? 0 : req.id;
      scope.postMessage({ kind: "error", id, message: (err as Error)?.message ?? String(err) });
    }
  };
  let queue = Promise.resolve();
  scope.onmessage = (e) => {
    queue = queue.then(() => handle(e.data));
  };
}
