// Two small SVG charts of the console's own (no chart library: a few dozen lines draw what is needed, and the policy's
// style-src 'self' rules out libraries that inject style attributes).
import { h, svg } from "./dom";

export interface Series {
  label: string;
  cls: string;
  values: number[];
}

/** Stacked columns, one per instant, one colour per series (e.g. pods by state over time). */
export function stackedColumns(xLabels: string[], series: Series[], title: string): HTMLElement {
  const W = 640, H = 220, pad = { l: 36, r: 8, t: 10, b: 28 };
  const n = xLabels.length;
  const totals = xLabels.map((_, i) => series.reduce((s, x) => s + (x.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const colW = (W - pad.l - pad.r) / Math.max(1, n);
  const y = (v: number) => H - pad.b - (v / max) * (H - pad.t - pad.b);
  const ticks = [0, Math.ceil(max / 2), max];
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title },
    ticks.map((t) => [svg("line", { x1: pad.l, x2: W - pad.r, y1: y(t), y2: y(t), class: "gridline" }),
      svg("text", { x: pad.l - 6, y: y(t) + 4, class: "axis", "text-anchor": "end" }, String(t))]),
    xLabels.map((label, i) => {
      let base = 0;
      const x = pad.l + i * colW + colW * 0.15;
      const parts = series.map((s) => {
        const v = s.values[i] ?? 0;
        const rect = v === 0 ? null : svg("rect", { x, width: colW * 0.7, y: y(base + v), height: y(base) - y(base + v), class: `bar ${s.cls}` },
          svg("title", null, `${label}: ${v} ${s.label}`));
        base += v;
        return rect;
      });
      const showLabel = n <= 12 || i % Math.ceil(n / 12) === 0;
      return [parts, showLabel ? svg("text", { x: x + colW * 0.35, y: H - 10, class: "axis", "text-anchor": "middle" }, label) : null];
    }));
  return h("figure", { class: "figure" }, h("figcaption", null, title), chart,
    h("div", { class: "legend" }, series.filter((s) => s.values.some((v) => v > 0)).map((s) => h("span", { class: `key ${s.cls}` }, s.label))));
}

/** A histogram of values into equal-width bins (e.g. boot times). */
export function histogram(values: number[], bins: number, unit: string, title: string): HTMLElement {
  if (values.length === 0) return h("figure", { class: "figure" }, h("figcaption", null, title), h("p", { class: "empty" }, "No data yet."));
  const lo = Math.min(...values), hi = Math.max(...values);
  const width = Math.max(1, (hi - lo) / bins);
  const counts = Array.from({ length: bins }, () => 0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / width))]++;
  const labels = counts.map((_, i) => `${Math.round(lo + i * width)}`);
  const sorted = [...values].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const fig = stackedColumns(labels, [{ label: "microVMs", cls: "state-running", values: counts }], title);
  fig.appendChild(h("p", { class: "hint" }, `${values.length} boots · p50 ${Math.round(q(0.5))} ${unit} · p90 ${Math.round(q(0.9))} ${unit} · max ${Math.round(hi)} ${unit} (bins start at the value shown, in ${unit})`));
  return fig;
}
