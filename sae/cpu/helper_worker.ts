// The CPU TopK trainer's helper thread: runs the half of a loop the main thread hands it
// (sae/cpu/helper.ts) on arrays over SharedArrayBuffers, and answers when done.
/// <reference lib="deno.worker" />
import {
  adamw,
  decodeRows,
  normalizeRows,
  removeParallel,
  sparseGradRows,
  sumOfSquares,
} from "./kernels.ts";
import type { HelperJob } from "./helper.ts";

function run(job: HelperJob): number {
  switch (job.kind) {
    case "decode":
      decodeRows(job.a, job.d, job.k, job.t0, job.t1);
      return 0;
    case "grads":
      sparseGradRows(job.a, job.d, job.k, job.j0, job.j1, job.accumulate);
      return 0;
    case "project":
      if (job.constrain) removeParallel(job.W_dec, job.gW_dec, job.d);
      return sumOfSquares(job.gW_dec);
    case "adam":
      adamw(job.p, job.g, job.m, job.v, job.h);
      if (job.normalizeRows) normalizeRows(job.p, job.d);
      return 0;
  }
}

self.onmessage = (ev: MessageEvent<HelperJob>) => {
  try {
    self.postMessage({ ok: true, value: run(ev.data) });
  } catch (e) {
    self.postMessage({ ok: false, message: (e as Error).message });
  }
};
