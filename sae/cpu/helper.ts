// A second thread for the CPU TopK trainer's host loops: on a 2-core machine the main thread runs
// them on one core while the other idles, so each loop is split in two, the helper worker takes
// one half (arrays over SharedArrayBuffers, no copies) and the main thread the other. One job at a
// time; the split is by rows, so every sum runs in the same order as on one thread.
import type { AdamScalars, decodeRows, sparseGradRows } from "./kernels.ts";

export type HelperJob =
  | {
    kind: "decode";
    a: Parameters<typeof decodeRows>[0];
    d: number;
    k: number;
    t0: number;
    t1: number;
  }
  | {
    kind: "grads";
    a: Parameters<typeof sparseGradRows>[0];
    d: number;
    k: number;
    j0: number;
    j1: number;
    accumulate: boolean;
  }
  /** Decoder constraint's projection of ∂W_dec (if constrain); answers ‖∂W_dec‖². */
  | { kind: "project"; W_dec: Float32Array; gW_dec: Float32Array; d: number; constrain: boolean }
  | {
    kind: "adam";
    p: Float32Array;
    g: Float32Array;
    m: Float32Array;
    v: Float32Array;
    h: AdamScalars;
    /** Renormalise p's rows of length d after the step (the decoder constraint). */
    normalizeRows: boolean;
    d: number;
  };

type Reply = { ok: true; value: number } | { ok: false; message: string };

/** A Float32Array over shared memory, which the helper sees as the main thread does. */
export function sharedF32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * 4));
}

export function sharedI32(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * 4));
}

export class CpuHelper {
  #worker: Worker;
  #pending: { resolve: (v: number) => void; reject: (e: Error) => void } | null = null;
  #failed: Error | null = null;

  constructor() {
    this.#worker = new Worker(new URL("./helper_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (ev: MessageEvent<Reply>) => {
      const p = this.#pending;
      this.#pending = null;
      if (!p) return;
      if (ev.data.ok) p.resolve(ev.data.value);
      else p.reject(new Error(`cpu SAE helper thread: ${ev.data.message}`));
    };
    this.#worker.onerror = (ev) => {
      ev.preventDefault();
      this.#failed = new Error(`cpu SAE helper thread failed: ${ev.message}`);
      this.#pending?.reject(this.#failed);
      this.#pending = null;
    };
  }

  /** Starts `job` on the helper; await the result after doing the main thread's half. */
  run(job: HelperJob): Promise<number> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#pending) return Promise.reject(new Error("cpu SAE helper thread: a job is running"));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#worker.postMessage(job);
    });
  }

  terminate(): void {
    this.#worker.terminate();
    this.#pending?.reject(new Error("cpu SAE helper thread: terminated"));
    this.#pending = null;
  }
}
