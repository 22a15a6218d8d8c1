// The live page: job list, live charts from a job's SSE stream (fetch-based, so it can send the
// bearer token and Last-Event-ID, and reconnect after the server restarts), the CE-eval table of
// finished runs, and experiments with their SVG plots. No build step, no CDN: the modules it
// shares with the service come from lib/ (served as /ui/<name>.js by routes/page.ts).
import { evalCells } from "./eval_cells.js";
import { PALETTE } from "./palette.js";
import { readSseStream } from "./sse.js";
const $ = (s, el = document) => el.querySelector(s);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v) =>
  typeof v !== "number" || !Number.isFinite(v)
    ? "—"
    : Math.abs(v) >= 1000
    ? v.toFixed(0)
    : Math.abs(v) >= 1
    ? v.toFixed(3)
    : v.toPrecision(3);

let token = sessionStorage.getItem("splice-token") ??
  new URLSearchParams(location.search).get("token") ?? "";
const headers = () => (token ? { Authorization: `Bearer ${token}` } : {});

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  if (r.status === 401) {
    $("#auth").hidden = false;
    throw new Error("this server needs a token");
  }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

$("#auth").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("splice-token", token);
  $("#auth").hidden = true;
  refresh();
});

// ---- job list -------------------------------------------------------------------------------

let selected = null;
let jobs = [];

async function refresh() {
  try {
    const [f, e, x] = await Promise.all([api("/finetunes"), api("/evals"), api("/experiments")]);
    jobs = [
      ...f.finetunes.map((j) => ({ ...j, kind: "finetune", label: `${j.config.kind} fine-tune` })),
      ...e.evals.map((j) => ({ ...j, kind: "eval", label: "CE-eval" })),
      ...x.experiments.map((j) => ({ ...j, kind: "experiment", label: `experiment: ${j.name}` })),
    ].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
    $("#server").textContent = `${location.host} · ${jobs.length} jobs`;
    renderJobs();
    renderEvals();
    if (!selected && jobs.length) select(jobs.find((j) => j.state === "running") ?? jobs[0]);
    else if (selected) {
      const now = jobs.find((j) => j.id === selected.id);
      if (now && now.state !== selected.state) {
        selected = now;
        if (now.kind !== "finetune") renderDetail(now);
      }
    }
  } catch (err) {
    $("#server").textContent = `server unreachable (${err.message}); retrying…`;
  }
}

function renderJobs() {
  $("#jobs").innerHTML = jobs.length
    ? jobs.map((j) =>
      `<li data-id="${esc(j.id)}" class="${selected?.id === j.id ? "selected" : ""}">` +
      `<span>${esc(j.label)} <span class="muted">${esc(j.id.slice(0, 8))}</span></span>` +
      `<span class="state ${esc(j.state)}">${esc(j.state)}</span></li>`
    ).join("")
    : `<li class="muted">no jobs yet</li>`;
  for (const li of document.querySelectorAll("#jobs li[data-id]")) {
    li.onclick = () => select(jobs.find((j) => j.id === li.dataset.id));
  }
}

function renderEvals() {
  const rows = jobs.flatMap((j) => {
    const ev = j.kind === "finetune" ? j.result?.eval : j.kind === "eval" ? j.result : null;
    return ev && ev.ceClean !== undefined ? [[j, ev]] : [];
  });
  $("#evals tbody").innerHTML = rows.length
    ? rows.map(([j, e]) =>
      `<tr><td>${esc(j.id.slice(0, 8))}</td><td>${esc(j.label)}</td>` +
      evalCells(e).map((v) => `<td>${fmt(v)}</td>`).join("") +
      "</tr>"
    ).join("")
    : `<tr><td colspan="10" class="muted">no finished evaluations yet</td></tr>`;
}

// ---- charts -----------------------------------------------------------------------------------

const METRICS = [
  ["mse", "MSE"],
  ["kl", "KL"],
  ["alpha", "alpha = MSE / KL"],
  ["loss", "total loss"],
  ["l0", "L0"],
  ["fvu", "FVU (MSE / Var x)"],
  ["deadFraction", "dead latent fraction"],
  ["deadLatents", "dead latents"],
  ["lr", "learning rate"],
  ["tokensPerSecond", "tokens / s"],
];

class Charts {
  constructor(el) {
    this.series = new Map(); // metric → Map(seriesName → [[x, y]])
    el.innerHTML = `<div class="charts">${
      METRICS.map(([k, t]) =>
        `<div class="chart" data-metric="${k}"><h3>${esc(t)}</h3><svg viewBox="0 0 300 120" ` +
        `preserveAspectRatio="none" data-points="0"></svg></div>`
      ).join("")
    }</div>`;
    this.el = el;
    this.pending = false;
  }
  add(name, m) {
    for (const [k] of METRICS) {
      const v = m[k];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      if (!this.series.has(k)) this.series.set(k, new Map());
      const s = this.series.get(k);
      if (!s.has(name)) s.set(name, []);
      s.get(name).push([m.tokens ?? m.step, v]);
    }
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.draw();
      });
    }
  }
  draw() {
    for (const [k] of METRICS) {
      const svg = $(`.chart[data-metric="${k}"] svg`, this.el);
      const s = this.series.get(k);
      if (!svg || !s) continue;
      const pts = [...s.values()].flat();
      const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
      let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      if (x1 === x0) x1 = x0 + 1;
      if (y1 === y0) {
        const pad = Math.abs(y0) * 0.05 || 1;
        [y0, y1] = [y0 - pad, y1 + pad];
      }
      const sx = (x) => 4 + (292 * (x - x0)) / (x1 - x0),
        sy = (y) => 112 - (100 * (y - y0)) / (y1 - y0);
      // A lone point gets a dot: a one-point polyline draws nothing.
      const lines = [...s.entries()].map(([, p], i) =>
        p.length === 1
          ? `<circle cx="${sx(p[0][0]).toFixed(1)}" cy="${sy(p[0][1]).toFixed(1)}" r="2.5" ` +
            `fill="${PALETTE[i % PALETTE.length]}"/>`
          : `<polyline fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="1.5" ` +
            `vector-effect="non-scaling-stroke" points="${
              p.map((q) => `${sx(q[0]).toFixed(1)},${sy(q[1]).toFixed(1)}`).join(" ")
            }"/>`
      ).join("");
      svg.innerHTML = lines +
        `<text x="4" y="10" font-size="9" fill="#6a737d">${fmt(y1)}</text>` +
        `<text x="4" y="119" font-size="9" fill="#6a737d">${fmt(y0)}</text>` +
        `<text x="296" y="119" font-size="9" fill="#6a737d" text-anchor="end">${
          fmt(x1)
        } tok</text>` +
        (s.size > 1
          ? [...s.keys()].map((name, i) =>
            `<text x="296" y="${10 + 10 * i}" font-size="9" text-anchor="end" ` +
            `fill="${PALETTE[i % PALETTE.length]}">${esc(name)}</text>`
          ).join("")
          : "");
      svg.dataset.points = String(pts.length);
    }
  }
}

// ---- SSE over fetch, with Last-Event-ID and reconnects ------------------------------------------

function follow(path, onEvent, onStatus) {
  let last = 0, stopped = false, ctl = null;
  (async () => {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        ctl = new AbortController();
        const r = await fetch(path, {
          headers: { ...headers(), "Last-Event-ID": String(last) },
          signal: ctl.signal,
        });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        onStatus(null);
        let final = false;
        for await (const ev of readSseStream(r.body)) {
          if (!ev.data) continue;
          if (ev.id) last = Number(ev.id);
          const data = JSON.parse(ev.data);
          onEvent(ev.event, data);
          if (ev.event === "state" && ["succeeded", "failed", "cancelled"].includes(data.state)) {
            final = true;
          }
        }
        if (final) return;
        throw new Error("the stream ended before the job did");
      } catch (err) {
        if (stopped) return;
        onStatus(`Live updates lost (${err.message}); reconnecting…`);
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
      }
    }
  })();
  return () => {
    stopped = true;
    ctl?.abort();
  };
}

// ---- detail views -----------------------------------------------------------------------------

let unfollow = null;

function select(job) {
  if (!job) return;
  selected = job;
  renderJobs();
  renderDetail(job);
}

function banner(el, kind, text) {
  el.innerHTML = text ? `<div class="banner ${kind}">${esc(text)}</div>` : "";
}

function renderDetail(job) {
  unfollow?.();
  unfollow = null;
  const d = $("#detail");
  d.dataset.job = job.id;
  d.innerHTML = `<h2>${esc(job.label)} <span class="muted">${esc(job.id)}</span></h2>` +
    `<p id="status"><span class="state ${esc(job.state)}" id="job-state">${
      esc(job.state)
    }</span> ` +
    `<span id="progress" class="muted"></span></p><div id="alerts"></div><div id="stream-alert"></div>` +
    `<div id="body"></div>`;
  const setState = (s, error) => {
    $("#job-state").className = `state ${s}`;
    $("#job-state").textContent = s;
    if (s === "failed") {
      banner($("#alerts"), "error", `This job failed: ${error ?? "see its events"}`);
    }
    if (s === "cancelled") banner($("#alerts"), "warn", "This job was cancelled.");
  };
  if (job.state === "failed") setState("failed", job.error);
  if (job.kind === "eval") {
    $("#body").innerHTML = job.result
      ? evalTable(job.result)
      : `<p class="muted">not finished yet</p>`;
  }
  if (job.kind === "experiment") {
    renderExperiment(job);
  }
  const charts = job.kind === "eval"
    ? null
    : new Charts(job.kind === "experiment" ? $("#live") : $("#body"));
  const base = job.kind === "finetune"
    ? "/finetunes"
    : job.kind === "eval"
    ? "/evals"
    : "/experiments";
  unfollow = follow(`${base}/${job.id}/events`, (type, data) => {
    if (type === "metrics") charts?.add(data.arm ?? data.phase ?? "run", data);
    else if (type === "progress" && data.totalSteps) {
      $("#progress").textContent = `step ${data.step} of ${data.totalSteps}${
        data.phase ? ` (${data.phase})` : ""
      }`;
    } else if (type === "progress" && data.arm) {
      $("#progress").textContent = `arm ${
        data.armIndex + 1
      } of ${data.arms}: ${data.arm}, step ${data.step}`;
    } else if (type === "log") $("#progress").textContent = data.message;
    else if (type === "result") $("#progress").textContent = "done";
    else if (type === "state") {
      setState(data.state, data.error);
      if (data.state === "succeeded" && job.kind !== "finetune") refreshSelected(job);
    } else if (type === "error") setState("failed", data.message);
    if (type === "result" && job.kind === "finetune" && data.eval) {
      $("#alerts").insertAdjacentHTML("beforeend", evalTable(data.eval));
    }
  }, (problem) => banner($("#stream-alert"), "warn", problem));
}

async function refreshSelected(job) {
  const base = job.kind === "eval" ? "/evals" : "/experiments";
  const fresh = await api(`${base}/${job.id}`);
  if (selected?.id !== job.id) return;
  if (job.kind === "eval") $("#body").innerHTML = evalTable(fresh.result);
  else renderExperiment({ ...job, ...fresh }, true);
}

function evalTable(e) {
  const cells = [
    ["CE clean", e.ceClean],
    ["CE spliced", e.ceSpliced],
    ["CE zero-ablated", e.ceZeroAblation],
    ["CE recovered", e.ceRecovered],
    ["CE gap", e.ceGap],
    ["KL", e.kl],
    ["FVU", e.recon?.fvu],
    ["L0", e.recon?.l0],
  ];
  return `<table class="eval"><tr>${cells.map(([k]) => `<th>${k}</th>`).join("")}</tr>` +
    `<tr>${cells.map(([, v]) => `<td>${fmt(v)}</td>`).join("")}</tr></table>`;
}

async function renderExperiment(x, keepLive = false) {
  const body = $("#body");
  const live = keepLive && $("#live") ? $("#live") : null;
  const cols = ["arm", "ceGap", "ceGapReduction", "ceRecovered", "kl", "fvu", "l0", "seconds"];
  body.innerHTML = `<table id="arms"><tr>${cols.map((c) => `<th>${c}</th>`).join("")}</tr>` +
    (x.table ?? []).map((r) =>
      `<tr>${cols.map((c) => `<td>${c === "arm" ? esc(r[c]) : fmt(r[c])}</td>`).join("")}</tr>`
    ).join("") + `</table><div class="plots" id="plots"></div>`;
  if (live) body.append(live);
  else body.insertAdjacentHTML("beforeend", `<h3>Live</h3><div id="live"></div>`);
  for (const link of x.links?.plots ?? []) {
    const r = await fetch(link, { headers: headers() });
    if (r.ok) $("#plots").insertAdjacentHTML("beforeend", `<div>${await r.text()}</div>`);
  }
}

refresh();
setInterval(refresh, 3000);
