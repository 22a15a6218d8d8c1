import { assert, assertEquals, assertThrows } from "@std/assert";
import { createBuffer, poison, readF32, upload, write } from "../../gpu/buffers.ts";
import { AdamW } from "../../gpu/adamw.ts";
import type { ParamGroup } from "../../sae/params.ts";
import { testGpu } from "../util/gpu.ts";
import { freshRng, maxScaledError, relError } from "../util/rand.ts";

interface Ref {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** torch.optim.AdamW, written out in float64. */
function adamwRef(
  s: Ref,
  g: Float64Array,
  t: number,
  lr: number,
  o: { b1: number; b2: number; eps: number; wd: number },
): void {
  const bc1 = 1 - o.b1 ** t, bc2 = 1 - o.b2 ** t;
  for (let i = 0; i < s.p.length; i++) {
    s.p[i] *= 1 - lr * o.wd;
    s.m[i] = o.b1 * s.m[i] + (1 - o.b1) * g[i];
    s.v[i] = o.b2 * s.v[i] + (1 - o.b2) * g[i] * g[i];
    s.p[i] -= (lr / bc1) * s.m[i] / (Math.sqrt(s.v[i]) / Math.sqrt(bc2) + o.eps);
  }
}

const TAIL = 70; // poisoned floats past each buffer's end: an out-of-range write shows up there

for (const chunked of [false, true]) {
  Deno.test(`AdamW matches float64 torch-style AdamW over several steps (chunked=${chunked})`, async () => {
    const { device } = await testGpu();
    const rng = freshRng("adamw");
    const sizes = [1000 + rng.int(300), 37 + rng.int(20), 2 + rng.int(5), 517 + rng.int(50)];
    const decays = [true, false, false, true];
    const o = { b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05 + rng.uniform() * 0.1 };
    const groups: ParamGroup[] = [];
    const refs: Ref[] = [];
    const inits: Float32Array[] = [];
    for (let j = 0; j < sizes.length; j++) {
      const n = sizes[j];
      const p0 = rng.normals(n);
      inits.push(p0);
      const mk = (label: string, data?: Float32Array) => {
        const b = createBuffer(device, (n + TAIL) * 4, label);
        poison(device, b);
        if (data) write(device, b, data);
        else write(device, b, new Float32Array(n));
        return b;
      };
      groups.push({
        name: `g${j}`,
        param: mk("p", p0),
        grad: mk("g", new Float32Array(n)),
        m: mk("m"),
        v: mk("v"),
        size: n,
        decay: decays[j],
      });
      refs.push({
        p: Float64Array.from(p0),
        m: new Float64Array(n),
        v: new Float64Array(n),
      });
    }
    const opt = new AdamW(device, groups, {
      beta1: o.b1,
      beta2: o.b2,
      eps: o.eps,
      weightDecay: o.wd,
      maxBindingBytes: chunked ? 1024 : undefined,
    });
    const steps = 6;
    for (let t = 1; t <= steps; t++) {
      const lr = 1e-2 * (1 - (t - 1) / steps) * (0.5 + rng.uniform());
      // Every other step the gradient is scaled on the GPU, as GradClipper's buffer does it.
      const scale = t % 2 === 0 ? 0.25 + rng.uniform() * 0.5 : 1;
      const scaleBuf = t % 2 === 0 ? upload(device, new Float32Array([scale, 123])) : undefined;
      for (let j = 0; j < groups.length; j++) {
        const g = rng.normals(sizes[j], 0.1 + rng.uniform());
        write(device, groups[j].grad, g);
        const g64 = Float64Array.from(g, (x) => x * scale);
        adamwRef(refs[j], g64, t, lr, { ...o, wd: decays[j] ? o.wd : 0 });
      }
      opt.step(lr, scaleBuf);
    }
    assertEquals(opt.t, steps);
    for (let j = 0; j < groups.length; j++) {
      const n = sizes[j];
      for (
        const [name, buf, ref] of [
          ["param", groups[j].param, refs[j].p],
          ["m", groups[j].m, refs[j].m],
          ["v", groups[j].v, refs[j].v],
        ] as const
      ) {
        const all = await readF32(device, buf, n + TAIL);
        const got = all.subarray(0, n);
        const rel = relError(got, ref);
        const worst = maxScaledError(got, ref, 1e-5, 1e-7 * Math.max(...ref.map(Math.abs)));
        assert(rel <= 1e-5 && worst <= 1, `group ${j} ${name}: rel ${rel}, worst scaled ${worst}`);
        assert(all.subarray(n).every(Number.isNaN), `group ${j} ${name}: wrote past its end`);
      }
      const p = await readF32(device, groups[j].param, n);
      assert(p.every((x, i) => x !== inits[j][i]), `group ${j}: an element was not updated`);
    }
    opt.destroy();
    for (const g of groups) for (const b of [g.param, g.grad, g.m, g.v]) b.destroy();
  });
}

Deno.test("AdamW rejects a bad learning rate by name", async () => {
  const { device } = await testGpu();
  const opt = new AdamW(device, []);
  let msg = "";
  try {
    opt.step(NaN);
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("learning rate"), msg);
});

Deno.test("adamw: a moment buffer shorter than its group is refused by name", async () => {
  const { device } = await testGpu();
  const ok = createBuffer(device, 40 * 4), short = createBuffer(device, 39 * 4);
  const group = { name: "W", param: ok, grad: ok, m: ok, v: short, size: 40, decay: true };
  assertThrows(
    () => new AdamW(device, [group]),
    RangeError,
    "adamw: W.v holds 39 values, needs 40",
  );
  ok.destroy();
  short.destroy();
});
