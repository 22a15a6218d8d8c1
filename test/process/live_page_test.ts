// The live page in headless Chromium (Debian chromium driven by playwright-core): a short fine-tune
// on the embedded default shows up running, its charts gain points while it trains, it ends
// succeeded with its CE-eval in the table, a failed job shows its error, and a screenshot is saved
// under test/out/. CI installs chromium and sets SPLICE_REQUIRE_BROWSER=1, so there a missing
// browser fails the test instead of skipping it.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { chromium } from "playwright-core";
import { startTestService } from "../util/service.ts";
import { TcpProxy } from "../util/tcp_proxy.ts";

const CHROMIUM = "/usr/bin/chromium";
const haveBrowser = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!haveBrowser && Deno.env.get("SPLICE_REQUIRE_BROWSER")) {
  throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
}

// Flags from the machine notes: Chromium's background networking fails on a closed network.
const launch = () =>
  chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });

const POINTS = `Number(document.querySelector('.chart[data-metric="mse"] svg')` +
  `?.getAttribute("data-points"))`;

Deno.test({
  name: "live page: a fine-tune's charts grow while it runs, then it succeeds; failures are shown",
  ignore: !haveBrowser,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune", "experiment"] });
    const { url, runner } = svc;
    const browser = await launch();
    try {
      const res = await fetch(`${url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "kl_mse",
          tokens: 80 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          finetune_fraction: 0.5,
          init: { kind: "topk", d_sae: 256, k: 8 },
          metrics_every: 1,
          checkpoint_every: 1000,
          eval_sequences: 2,
        }),
      });
      const job = await res.json();
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(url);
      await page.click(`#jobs li[data-id="${job.id}"]`);
      const points = () =>
        page.$eval('.chart[data-metric="mse"] svg', (el) => Number(el.getAttribute("data-points")));
      const state = () => page.textContent("#job-state");
      // Points arrive while the job is still running, and keep arriving.
      const PTS = POINTS;
      // Generous limits: CI runs test files in parallel on two cores.
      await page.waitForFunction(`${PTS} >= 2`, undefined, { timeout: 180_000 });
      const first = await points();
      assertStringIncludes((await state()) ?? "", "running");
      await page.waitForFunction(`${PTS} > ${first}`, undefined, { timeout: 120_000 });
      await page.waitForFunction(
        `document.querySelector("#job-state")?.textContent === "succeeded"`,
        undefined,
        { timeout: 300_000 },
      );
      assert((await points()) >= 80, `every step is on the chart (${await points()})`);
      // The KL chart has the fine-tune phase's points; the CE-eval table lists the run.
      const klPoints = await page.$eval(
        '.chart[data-metric="kl"] svg',
        (el) => Number(el.getAttribute("data-points")),
      );
      assert(klPoints >= 30, `KL points: ${klPoints}`);
      await page.waitForFunction(
        `document.querySelector("#evals tbody")?.textContent?.includes("${job.id.slice(0, 8)}")`,
      );
      await Deno.mkdir(new URL("../out/", import.meta.url), { recursive: true });
      await page.screenshot({
        path: new URL("../out/live_page.png", import.meta.url).pathname,
        fullPage: true,
      });

      // A job that fails (its SAE does not exist) shows the reason, not an empty chart.
      const bad = await runner.submit("finetune", { kind: "kl_mse", sae: "missing-sae" });
      await page.waitForSelector(`#jobs li[data-id="${bad.id}"]`, { timeout: 30_000 });
      await page.click(`#jobs li[data-id="${bad.id}"]`);
      await page.waitForSelector(".banner.error");
      assertStringIncludes((await page.textContent(".banner.error")) ?? "", "missing-sae");

      // An experiment on the SAE the fine-tune wrote: its arms side by side, then its plots.
      const exp = await (await fetch(`${url}/experiments`, {
        method: "POST",
        body: JSON.stringify({
          sae: job.id,
          arms: [{ type: "mse" }, { type: "linear_skip", rank: 2 }],
          tokens: 4 * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          eval_sequences: 2,
          curve_points: 1,
          curve_sequences: 2,
        }),
      })).json();
      await page.waitForSelector(`#jobs li[data-id="${exp.id}"]`, { timeout: 30_000 });
      await page.click(`#jobs li[data-id="${exp.id}"]`);
      await page.waitForFunction(
        `document.querySelectorAll("#plots svg").length === 4`,
        undefined,
        {
          timeout: 120_000,
        },
      );
      const rows = await page.$$eval("#arms tr", (trs) => trs.map((tr) => tr.textContent ?? ""));
      assert(rows.length === 3 && rows[2].includes("linear_skip r=2"), rows.join(" | "));
      await page.screenshot({
        path: new URL("../out/live_page_experiment.png", import.meta.url).pathname,
        fullPage: true,
      });
    } finally {
      await browser.close();
      await svc.close();
    }
  },
});

Deno.test({
  name:
    "live page: a dropped stream is reported, reconnects with Last-Event-ID, and misses no step",
  ignore: !haveBrowser,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const svc = await startTestService({ jobs: ["finetune"] });
    // The page talks to the service through a proxy the test can cut, as a restart would.
    const proxy = new TcpProxy(Number(new URL(svc.url).port));
    const browser = await launch();
    try {
      const steps = 120;
      const job = await (await fetch(`${svc.url}/finetunes`, {
        method: "POST",
        body: JSON.stringify({
          kind: "mse",
          tokens: steps * 2 * 16,
          batch_size: 2,
          seq_len: 16,
          init: { kind: "topk", d_sae: 256, k: 8 },
          metrics_every: 1,
          eval_sequences: 2,
        }),
      })).json();
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(proxy.url);
      await page.click(`#jobs li[data-id="${job.id}"]`);
      await page.waitForFunction(`${POINTS} >= 3`, undefined, { timeout: 180_000 });
      proxy.drop();
      await page.waitForFunction(
        `document.querySelector("#stream-alert")?.textContent?.includes("Live updates lost")`,
        undefined,
        { timeout: 60_000 },
      );
      await new Promise((r) => setTimeout(r, 1500));
      proxy.resume();
      await page.waitForFunction(
        `document.querySelector("#job-state")?.textContent === "succeeded"`,
        undefined,
        { timeout: 300_000 },
      );
      // Every step's metrics exactly once: the history after the last seen id filled the gap.
      const pts = await page.$eval(
        '.chart[data-metric="mse"] svg',
        (el) => Number(el.getAttribute("data-points")),
      );
      assertEquals(pts, steps);
      assertEquals(((await page.textContent("#stream-alert")) ?? "").trim(), "", "banner cleared");
    } finally {
      await browser.close();
      proxy.drop();
      await svc.close();
    }
  },
});
