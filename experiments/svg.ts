// Plots as standalone SVG strings: no dependencies, so they can be stored with an experiment,
// downloaded, and shown by the live page offline.
import { PALETTE } from "../lib/palette.js";

export interface Series {
  name: string;
  points: [number, number][];
}

export interface Band {
  name: string;
  /** x, low, mid, high (e.g. 25th/50th/75th percentiles). */
  points: [number, number, number, number][];
}

const W = 640, H = 360, M = { l: 64, r: 150, t: 36, b: 48 };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/** A tick's label with as many decimals as the tick spacing needs (0.9998 and 1 differ). */
function tickLabel(t: number, all: number[]): string {
  const step = all.length > 1 ? Math.abs(all[1] - all[0]) : 0;
  if (!(step > 0) || step >= 1 || Math.abs(t) >= 1e4) return fmt(t);
  return t.toFixed(Math.min(10, Math.ceil(-Math.log10(step))));
}

/** Round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function extent(values: number[]): [number, number] {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) [lo, hi] = [lo - (Math.abs(lo) || 1) * 0.1, hi + (Math.abs(hi) || 1) * 0.1];
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function frame(
  title: string,
  xLabel: string,
  yLabel: string,
  xs: [number, number],
  ys: [number, number],
) {
  const sx = (x: number) => M.l + (x - xs[0]) / (xs[1] - xs[0]) * (W - M.l - M.r);
  const sy = (y: number) => H - M.b - (y - ys[0]) / (ys[1] - ys[0]) * (H - M.t - M.b);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.l}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${(M.l + W - M.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(14 ${(M.t + H - M.b) / 2}) rotate(-90)" text-anchor="middle">${
      esc(yLabel)
    }</text>`,
  ];
  const yt = ticks(ys[0], ys[1]);
  for (const t of yt) {
    parts.push(
      `<line x1="${M.l}" x2="${W - M.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`,
      `<text x="${M.l - 6}" y="${sy(t) + 4}" text-anchor="end">${tickLabel(t, yt)}</text>`,
    );
  }
  parts.push(
    `<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="#333"/>`,
    `<line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" stroke="#333"/>`,
  );
  return { parts, sx, sy };
}

function legend(parts: string[], names: string[]) {
  names.forEach((n, i) => {
    const y = M.t + 8 + i * 18;
    parts.push(
      `<rect x="${W - M.r + 12}" y="${y - 9}" width="12" height="12" fill="${
        PALETTE[i % PALETTE.length]
      }"/>`,
      `<text x="${W - M.r + 30}" y="${y + 1}">${esc(n)}</text>`,
    );
  });
}

export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const all = series.flatMap((s) => s.points);
  const xs = extent(all.map((p) => p[0])), ys = extent(all.map((p) => p[1]));
  const { parts, sx, sy } = frame(title, xLabel, yLabel, xs, ys);
  const xt = ticks(xs[0], xs[1]);
  for (const t of xt) {
    parts.push(
      `<text x="${sx(t)}" y="${H - M.b + 16}" text-anchor="middle">${tickLabel(t, xt)}</text>`,
    );
  }
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) =>
      `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`
    ).join("");
    parts.push(
      `<path d="${d}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2"/>`,
    );
  });
  legend(parts, series.map((s) => s.name));
  parts.push("</svg>");
  return parts.join("\n");
}

export function barChart(
  title: string,
  yLabel: string,
  bars: { name: string; value: number }[],
): string {
  const ys = extent([0, ...bars.map((b) => b.value)]);
  const { parts, sy } = frame(title, "", yLabel, [0, 1], ys);
  const slot = (W - M.l - M.r) / Math.max(1, bars.length);
  bars.forEach((b, i) => {
    const x = M.l + i * slot + slot * 0.15;
    const y0 = sy(0), y1 = sy(b.value);
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${Math.min(y0, y1).toFixed(1)}" width="${
        (slot * 0.7).toFixed(1)
      }" height="${Math.abs(y1 - y0).toFixed(1)}" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${(x + slot * 0.35).toFixed(1)}" y="${
        (Math.min(y0, y1) - 4).toFixed(1)
      }" text-anchor="middle">${fmt(b.value)}</text>`,
    );
  });
  legend(parts, bars.map((b) => b.name));
  parts.push("</svg>");
  return parts.join("\n");
}

export function bandChart(title: string, xLabel: string, yLabel: string, bands: Band[]): string {
  const all = bands.flatMap((b) => b.points);
  const xs = extent(all.map((p) => p[0]));
  const ys = extent(all.flatMap((p) => [p[1], p[3]]));
  const { parts, sx, sy } = frame(title, xLabel, yLabel, xs, ys);
  const xt = ticks(xs[0], xs[1]);
  for (const t of xt) {
    parts.push(
      `<text x="${sx(t)}" y="${H - M.b + 16}" text-anchor="middle">${tickLabel(t, xt)}</text>`,
    );
  }
  bands.forEach((b, i) => {
    if (!b.points.length) return;
    const c = PALETTE[i % PALETTE.length];
    const upper = b.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[3]).toFixed(1)}`);
    const lower = b.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).reverse();
    parts.push(
      `<polygon points="${[...upper, ...lower].join(" ")}" fill="${c}" fill-opacity="0.2"/>`,
    );
    const d = b.points.map((p, j) =>
      `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[2]).toFixed(1)}`
    ).join("");
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
  });
  legend(parts, bands.map((b) => b.name));
  parts.push("</svg>");
  return parts.join("\n");
}
