// checkFeasible: each job that can never run names the setting and the limit; a job that fits
// passes. Resources are those of llvmpipe (128 MiB bindings) and a 16 GiB host unless varied.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  checkFeasible,
  EVAL_MAX_SEQUENCES,
  EVAL_MAX_TOKENS,
  type Resources,
} from "../../jobs/feasibility.ts";
import { FinetuneConfig } from "../../train/config.ts";
import { EvalConfig } from "../../eval/config.ts";

const MiB = 2 ** 20, GiB = 2 ** 30;
const llvmpipe: Resources = {
  gpuLimits: { maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 2 * GiB },
  hostMemoryBytes: 16 * GiB,
  vocab: 256,
  dModel: 128,
  modelBytes: 3.5 * MiB,
  ep: "wasm",
};
const finetune = (over: Record<string, unknown>) =>
  FinetuneConfig.parse({ kind: "kl_mse", ...over }) as unknown as Record<string, unknown>;

Deno.test("the defaults fit", () => {
  assertEquals(checkFeasible("finetune", finetune({}), llvmpipe), null);
  const sae = { kind: "topk", dIn: 128, dSae: 2048 };
  assertEquals(
    checkFeasible("eval", EvalConfig.parse({ sae: "s" }), { ...llvmpipe, sae }),
    null,
  );
});

Deno.test("an SAE whose weight matrix exceeds the adapter's binding limit is refused", () => {
  for (const d_sae of [300_000, 1 << 20]) {
    const r = checkFeasible("finetune", finetune({ init: { kind: "topk", d_sae } }), llvmpipe);
    assertEquals(r?.field, "init.d_sae");
    assertEquals(r?.limit, Math.floor(128 * MiB / (128 * 4)));
    assertStringIncludes(r!.message, "maxStorageBufferBindingSize");
  }
  // The largest allowed d_sae passes this check (and the SAE fits the host's memory).
  const ok = checkFeasible(
    "finetune",
    finetune({ init: { kind: "topk", d_sae: 262_144 } }),
    llvmpipe,
  );
  assertEquals(ok, null);
  // A registered SAE is checked the same way, under its own field.
  const r = checkFeasible("eval", EvalConfig.parse({ sae: "big" }), {
    ...llvmpipe,
    sae: { kind: "topk", dIn: 128, dSae: 300_000 },
  });
  assertEquals(r?.field, "sae");
});

Deno.test("an SAE whose training state exceeds half the host's memory is refused", () => {
  const big = {
    ...llvmpipe,
    gpuLimits: { maxStorageBufferBindingSize: 8 * GiB, maxBufferSize: 8 * GiB },
  };
  const r = checkFeasible("finetune", finetune({ init: { kind: "topk", d_sae: 1 << 20 } }), {
    ...big,
    hostMemoryBytes: 8 * GiB,
  });
  assertEquals(r?.field, "init.d_sae");
  assertStringIncludes(r!.message, "host");
  assertEquals(r?.limit, Math.floor(4 * GiB / (5 * 2 * 128 * 4)));
});

Deno.test("dense SAEs: a step's pre-activations must fit one binding", () => {
  const r = checkFeasible(
    "finetune",
    finetune({ init: { kind: "relu", d_sae: 65_536 }, batch_size: 8 }),
    llvmpipe,
  );
  assertEquals(r?.field, "batch_size");
  assertEquals(r?.limit, Math.floor(128 * MiB / (65_536 * 4 * 128)));
  // TopK kernels take the batch in chunks of rows: the same sizes pass.
  assertEquals(
    checkFeasible("finetune", finetune({ init: { kind: "topk", d_sae: 65_536 } }), llvmpipe),
    null,
  );
});

Deno.test("batch_size × seq_len beyond the wasm heap is refused; the native CPU EP has the host", () => {
  const r = checkFeasible("finetune", finetune({ batch_size: 4096 }), llvmpipe);
  assertEquals(r?.field, "batch_size");
  assertStringIncludes(r!.message, "wasm heap");
  assert(r!.limit >= 1 && r!.limit < 4096, `limit ${r!.limit}`);
  // The limit itself passes.
  assertEquals(checkFeasible("finetune", finetune({ batch_size: r!.limit }), llvmpipe), null);
  assertEquals(
    checkFeasible("finetune", finetune({ batch_size: 4096 }), {
      ...llvmpipe,
      ep: "cpu",
      hostMemoryBytes: 64 * GiB,
    }),
    null,
  );
});

Deno.test("a shuffle buffer over half the host's memory is refused (only the part the job fills)", () => {
  const cfg = finetune({ shuffle_buffer_tokens: 1 << 26, tokens: 1 << 27 });
  const r = checkFeasible("finetune", cfg, llvmpipe);
  assertEquals(r?.field, "shuffle_buffer_tokens");
  assertEquals(r?.limit, Math.floor(8 * GiB / (128 * 4)));
  // A short job fills only the tokens of its MSE phase.
  assertEquals(
    checkFeasible("finetune", finetune({ shuffle_buffer_tokens: 1 << 26 }), llvmpipe),
    null,
  );
});

Deno.test("evaluations are bounded in sequences and tokens", () => {
  const sae = { kind: "topk", dIn: 128, dSae: 2048 };
  const r = checkFeasible("eval", { sequences: 5000, seq_len: 128, batch_size: 8 }, {
    ...llvmpipe,
    sae,
  });
  assertEquals([r?.field, r?.limit], ["sequences", EVAL_MAX_SEQUENCES]);
  const long = checkFeasible("eval", { sequences: 4096, seq_len: 4096, batch_size: 1 }, {
    ...llvmpipe,
    sae,
  });
  assertEquals([long?.field, long?.limit], ["sequences", EVAL_MAX_TOKENS / 4096]);
  const ft = checkFeasible("finetune", finetune({ eval_sequences: 10_000 }), llvmpipe);
  assertEquals(ft?.field, "eval_sequences");
  // The schema says the same.
  assertEquals(EvalConfig.safeParse({ sae: "s", sequences: 5000 }).success, false);
});

Deno.test("a KL step that cannot fit one sequence is refused naming seq_len; a micro_batch too large names micro_batch", () => {
  // Gemma-2's vocabulary on ONNX Runtime Web: one sequence of 1024 tokens is over the 4 GiB heap.
  const gemma = { ...llvmpipe, vocab: 256_000, dModel: 2304, modelBytes: 1 * GiB };
  const r = checkFeasible("finetune", finetune({ batch_size: 1, seq_len: 1024 }), gemma);
  assertEquals(r?.field, "seq_len");
  assertStringIncludes(r!.message, '"cpu" or "cuda"');
  // Pythia's vocabulary fits one sequence at a time there, but not two in one run.
  const pythia = { ...llvmpipe, vocab: 50_304, dModel: 768, modelBytes: 650 * MiB };
  const two = finetune({ batch_size: 2, seq_len: 1024, micro_batch: 2 });
  assertEquals(checkFeasible("finetune", two, pythia)?.field, "micro_batch");
  assertEquals(
    checkFeasible("finetune", finetune({ batch_size: 2, seq_len: 1024, micro_batch: 1 }), pythia),
    null,
  );
});
