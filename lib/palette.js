// Series colours of every chart: the stored experiment plots (experiments/svg.ts) and the live
// page's charts (served to the browser as /ui/palette.js), so a series looks the same in both.
export const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
];
