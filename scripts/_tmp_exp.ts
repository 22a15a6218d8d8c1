import { api, followEvents, ROOT, startService } from "./_client.ts";
const dataDir = await Deno.makeTempDir();
const { proc, url } = await startService(dataDir);
try {
  const form = new FormData();
  for (const f of ["cfg.json", "sae_weights.safetensors"]) {
    form.append(f, new Blob([await Deno.readFile(`${ROOT}fixtures/sae/tiny-neox-topk/${f}`)]), f);
  }
  const sae = (await api<{ id: string }>(`${url}/saes`, { method: "POST", body: form })).id;
  const exp = await api<{ id: string }>(`${url}/experiments`, {
    method: "POST",
    body: JSON.stringify({
      sae,
      name: "lm-lora all blocks, sae-lora dropout",
      tokens: 262144,
      lr: 2e-4,
      adapter_lr: 1e-2,
      eval_sequences: 64,
      arms: [{ type: "mse" }, { type: "lm_lora", rank: 2, alpha: 2, layers: "all" }, {
        type: "sae_lora",
        rank: 2,
        alpha: 2,
        dropout: 0.1,
      }],
    }),
  });
  await followEvents(`${url}/experiments/${exp.id}/events`, "x", (e, d) => {
    if (e === "log") console.error(d.message);
  });
  const got = await api<{ table: unknown[]; links: { plots: string[] } }>(`${url}/experiments/${exp.id}`);
  console.log(JSON.stringify(got.table, null, 1));
  await Deno.mkdir("/tmp/exp-extra", { recursive: true });
  await Deno.writeTextFile("/tmp/exp-extra/experiment.json", JSON.stringify(got, null, 2));
  for (const p of got.links.plots) {
    await Deno.writeTextFile(`/tmp/exp-extra/${p.split("/").pop()}`, await (await fetch(`${url}${p}`)).text());
  }
} finally {
  proc.kill("SIGTERM");
  await proc.status;
}
