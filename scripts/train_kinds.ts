// Trains each SAE kind from scratch with its defaults (only init.kind and d_sae set; kl_mse on the
// last 5%) through the finetune job, and prints L0 at evaluation, FVU and CE gap per kind: the
// measurement of bench/RESULTS.md's "Every kind with its defaults".
//   ./deno run -A scripts/train_kinds.ts [--tokens 524288] [--d-sae 1024] [--kinds relu,jumprelu]
import { parseArgs } from "node:util";
import { localFinetunes } from "./_local_jobs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string" },
    "d-sae": { type: "string" },
    kinds: { type: "string" },
    extra: { type: "string" },
  },
});
const tokens = Number(values.tokens ?? 524_288), dSae = Number(values["d-sae"] ?? 1024);
const kinds = (values.kinds ?? "topk,batchtopk,relu,jumprelu").split(",");
const extra = JSON.parse(values.extra ?? "{}");
const jobs = await localFinetunes();
const rows: string[] = [];
for (const kind of kinds) {
  const t0 = performance.now();
  type Eval = { ceGap: number; recon: { fvu: number; l0: number | null } };
  const out = await jobs.run({
    kind: "kl_mse",
    tokens,
    init: { kind, d_sae: dSae, ...(extra.init ?? {}) },
    metrics_every: 32,
    ...(extra.config ?? {}),
  }, (m) => {
    const n = m as Record<string, number>;
    console.error(
      `${kind} ${m.phase} step ${n.step} l0 ${n.l0.toFixed(1)} fvu ${n.fvu?.toFixed(3)} ` +
        `dead ${n.deadFraction?.toFixed(3)} λ ${n.l1Lambda?.toPrecision(3)}`,
    );
  });
  const ev = "result" in out ? (out.result as { eval: Eval }).eval : null;
  const error = "error" in out ? out.error : "";
  const s = ((performance.now() - t0) / 1000).toFixed(0);
  rows.push(
    ev
      ? `| ${kind} | ${ev.recon.l0?.toFixed(1)} | ${ev.recon.fvu.toFixed(3)} | ${
        ev.ceGap.toFixed(3)
      } | ${s} |`
      : `| ${kind} | failed: ${error} | | | ${s} |`,
  );
  console.error(rows.at(-1));
}
console.log(`tokens ${tokens}, d_sae ${dSae}\n| kind | L0 at eval | FVU | CE gap | s |`);
console.log("| --- | --- | --- | --- | --- |\n" + rows.join("\n"));
await jobs.close();
