// deno task lm <command>: hook points, gradient-rule check and splice-grad for a user's ONNX LM.
import type { ModelProto } from "./onnx.ts";
import { missingGradientRules } from "./autodiff/builder.ts";
import { resolveHook } from "./hooks.ts";
import { createSpliceGradSessions, spliceGrad, suffixWithLosses } from "./splice_grad.ts";
import { f32, i64, need, readSafetensors, tensorOf, writeSafetensors } from "../lib/safetensors.ts";
import { chooseEp, type EpRequest, EXECUTION_PROVIDERS } from "./session.ts";
import { type LoadedLm, loadLm } from "./load.ts";

const USAGE = `usage:
  deno task lm hooks MODEL
  deno task lm check MODEL --hook H
  deno task lm splice-grad MODEL --hook H --in IN.safetensors --out OUT.safetensors [--ep auto|cpu|cuda|wasm|webgpu]`;

export class CliError extends Error {
  override name = "CliError";
}

function flags(args: string[]): { pos: string[]; opt: Record<string, string> } {
  const pos: string[] = [], opt: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith("--")) {
      const v = args[i + 1];
      if (v === undefined || v.startsWith("--")) {
        throw new CliError(`${args[i]} needs a value\n${USAGE}`);
      }
      opt[args[i].slice(2)] = v;
      i++;
    } else pos.push(args[i]);
  }
  return { pos, opt };
}

async function load(path: string | undefined): Promise<LoadedLm> {
  if (!path) throw new CliError(`no MODEL given\n${USAGE}`);
  try {
    await Deno.stat(path);
  } catch {
    throw new CliError(`cannot read ${path}: no such file`);
  }
  return await loadLm(path);
}

function needHook(model: ModelProto, hook: string | undefined): string {
  if (!hook) throw new CliError(`--hook is required\n${USAGE}`);
  try {
    return resolveHook(model, hook);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  const { pos, opt } = flags(rest);
  switch (cmd) {
    case "hooks": {
      const { signature, hooks } = await load(pos[0]);
      console.log(`# ${signature.recognised.join("; ")}`);
      for (const h of hooks) {
        console.log(`${h.name}\t[${h.dims.join(", ")}]\t${h.tlNames.join(" ") || "-"}`);
      }
      return 0;
    }
    case "check": {
      const { model } = await load(pos[0]);
      const hook = needHook(model, opt.hook);
      const suffix = suffixWithLosses(model, hook);
      const missing = [
        ...missingGradientRules(suffix, "kl_mean", ["hook"]),
        ...missingGradientRules(suffix, "ce_mean", ["hook"]),
      ];
      const uniq = [...new Map(missing.map((m) => [m.node, m])).values()];
      if (!uniq.length) console.log("ok");
      else for (const m of uniq) console.log(`no gradient rule: ${m.opType}\t(node "${m.node}")`);
      return uniq.length ? 1 : 0;
    }
    case "splice-grad": {
      const { model } = await load(pos[0]);
      const hook = needHook(model, opt.hook);
      if (!opt.in || !opt.out) throw new CliError(`--in and --out are required\n${USAGE}`);
      const asked = opt.ep ?? "auto";
      if (asked !== "auto" && !(EXECUTION_PROVIDERS as readonly string[]).includes(asked)) {
        throw new CliError(`--ep must be auto, ${EXECUTION_PROVIDERS.join(", ")}; not ${asked}`);
      }
      const ep = await chooseEp(asked as EpRequest);
      const file = await readSafetensors(opt.in);
      const idsT = need(file, "input_ids");
      if (idsT.shape.length !== 2) {
        throw new CliError(`input_ids must be [B,T], found [${idsT.shape}]`);
      }
      const [B, T] = idsT.shape;
      const reconT = need(file, "recon");
      if (reconT.shape[0] !== B || reconT.shape[1] !== T || reconT.shape.length !== 3) {
        throw new CliError(`recon must be [${B},${T},d], found [${reconT.shape}]`);
      }
      let device: GPUDevice | undefined;
      if (ep === "webgpu") {
        const { acquireGpu } = await import("../gpu/device.ts");
        device = (await acquireGpu({ log: false })).device;
      }
      const s = await createSpliceGradSessions(model, hook, { ep, device });
      try {
        const out = await spliceGrad(s, {
          inputIds: i64(idsT, "input_ids"),
          recon: f32(reconT, "recon"),
          batch: B,
          seq: T,
        });
        await writeSafetensors(
          opt.out,
          Object.fromEntries(Object.entries(out).map(([k, v]) => [k, tensorOf(v.data, v.dims)])),
          { hook_tensor: hook, ep },
        );
        const mean = (a: Float32Array) => a.reduce((p, q) => p + q, 0) / a.length;
        console.log(
          `wrote ${opt.out}: mean KL ${mean(out.kl_per_token.data).toFixed(5)}, CE clean ` +
            `${mean(out.ce_clean_per_token.data).toFixed(4)}, spliced ${
              mean(out.ce_spliced_per_token.data).toFixed(4)
            }, ` +
            `zero ${mean(out.ce_zero_per_token.data).toFixed(4)}`,
        );
      } finally {
        await s.release();
      }
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

/** An error as the CLI prints it: one line per error (the usage after a usage error), no stack. */
export function errorLines(e: unknown): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const [first, ...rest] = err.message.split("\n");
  const usage = rest.join("\n").startsWith("usage:") ? `\n${rest.join("\n")}` : "";
  const body = usage ? first : err.message.replace(/\s*\n\s*/g, " ");
  const kind = err instanceof CliError ? "" : `${err.name === "Error" ? "" : `${err.name}: `}`;
  return `error: ${kind}${body}${usage}`;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(errorLines(e));
    Deno.exit(e instanceof CliError ? 2 : 1);
  }
}
