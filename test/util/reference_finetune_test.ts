// The reference itself is checked: its gradients against central finite differences of its own
// loss (with α held fixed, as the method detaches it).
import { assertLess } from "@std/assert";
import { linearSuffixKl, referenceStep, type Sae64, topkForward } from "./reference_finetune.ts";
import { freshRng } from "./rand.ts";

Deno.test("reference fine-tune step: gradients match finite differences of 0.5·(mse + α·kl)", () => {
  const rng = freshRng("reference_finetune");
  const n = 3, d = 4, m = 6, k = 2, V = 5;
  const sae: Sae64 = {
    dIn: d,
    dSae: m,
    k,
    W_enc: rng.normals64(d * m, 0.5),
    b_enc: rng.normals64(m, 0.1),
    W_dec: rng.normals64(m * d, 0.5),
    b_dec: rng.normals64(d, 0.1),
  };
  const x = rng.normals64(n * d), U = rng.normals64(d * V);
  const lpClean = new Float64Array(n * V);
  for (let t = 0; t < n; t++) {
    const z = Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let i = 0; i < d; i++) s += x[t * d + i] * U[i * V + v];
      return s;
    });
    const mx = Math.max(...z), lse = mx + Math.log(z.reduce((a, b) => a + Math.exp(b - mx), 0));
    for (let v = 0; v < V; v++) lpClean[t * V + v] = z[v] - lse;
  }
  const copy = (s: Sae64): Sae64 => ({
    ...s,
    W_enc: s.W_enc.slice(),
    b_enc: s.b_enc.slice(),
    W_dec: s.W_dec.slice(),
    b_dec: s.b_dec.slice(),
  });
  const step = referenceStep(copy(sae), { m: {}, v: {}, t: 0 }, x, U, lpClean, n, V, {
    objective: "kl_mse",
    lr: 0,
    weightDecay: 0,
    clip: 1e9,
  });
  const alpha = step.alpha;
  const loss = (s: Sae64) => {
    const f = topkForward(s, x, n);
    let mse = 0;
    for (let e = 0; e < n * d; e++) mse += (f.xhat[e] - x[e]) ** 2;
    mse /= n * d;
    return 0.5 * (mse + alpha * linearSuffixKl(f.xhat, U, lpClean, n, d, V).klMean);
  };
  const h = 1e-6;
  for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
    let worst = 0;
    for (let i = 0; i < sae[name].length; i++) {
      const p = copy(sae), q = copy(sae);
      p[name][i] += h;
      q[name][i] -= h;
      const fd = (loss(p) - loss(q)) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - step.grads[name][i]) / (1e-6 + Math.abs(fd)));
    }
    assertLess(worst, 1e-4, `${name}: worst relative error ${worst}`);
  }
});
