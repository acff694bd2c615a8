// Draws a Grafana dashboard's timeseries panels from the dashboard's JSON
// and a real Prometheus's answers, as Grafana would lay them out: each
// panel at its gridPos (24 columns, rows of 30 px), with its title, its
// unit on the y axis and a legend from each target's legendFormat. It is
// the test's stand-in for Grafana, which no registry the test machines
// reach offers; what it checks is the dashboard and the metrics, not
// Grafana.
//
// Query string: dashboard (URL of the JSON, default shoal.json),
// prometheus (base URL; Prometheus answers cross-origin per its
// --web.cors.origin), range_s (the time range ending now), scrape_s (the
// scrape interval, which Grafana's Prometheus data source is told too).
//
// When every panel is drawn, body's data-loaded is "done" ("error" if the
// dashboard itself could not be read) and each panel's data-series is the
// number of series drawn as a line (two finite points or more); a panel
// whose query failed has data-error.
"use strict";

const GRID_COLUMNS = 24;
const ROW_PX = 30;
const GAP_PX = 8;
// Grafana's classic palette, in its order.
const COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d", "#fade2a"];
const AXIS_LEFT_PX = 64;
const AXIS_BOTTOM_PX = 18;
// Room for half a time label right of the last tick.
const AXIS_RIGHT_PX = 26;
const Y_TICKS = 4;
const X_TICKS_MAX = 6;

const params = new URLSearchParams(location.search);
const PROMETHEUS = params.get("prometheus");
const RANGE_S = Number(params.get("range_s") || 3600);
const SCRAPE_S = Number(params.get("scrape_s") || 15);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Grafana's built-in variables as its Prometheus data source sets them:
// the interval is the range over the panel's width in pixels, never below
// the scrape interval; a rate window holds at least four scrapes.
function variables(dashboard, widthPx) {
  const interval_s = Math.max(SCRAPE_S, Math.ceil(RANGE_S / widthPx));
  const vars = {
    __interval: `${interval_s}s`,
    __interval_ms: String(interval_s * 1000),
    __rate_interval: `${Math.max(interval_s + SCRAPE_S, 4 * SCRAPE_S)}s`,
    __range: `${RANGE_S}s`,
    __range_s: String(RANGE_S),
  };
  for (const v of (dashboard.templating && dashboard.templating.list) || []) {
    if (v.current && v.current.value !== undefined) vars[v.name] = String(v.current.value);
  }
  return { vars, interval_s };
}

function substitute(expr, vars) {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced, bare) => vars[braced || bare] ?? whole);
}

async function queryRange(expr, start_s, end_s, step_s) {
  const query = new URLSearchParams({ query: expr, start: start_s, end: end_s, step: step_s });
  const response = await fetch(`${PROMETHEUS}/api/v1/query_range?${query}`, { cache: "no-store" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok || body.status !== "success") throw new Error(`${expr}: ${body.error || response.statusText}`);
  return body.data.result;
}

function legendName(target, metric) {
  if (target.legendFormat) {
    return target.legendFormat.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label) => metric[label] ?? "");
  }
  const labels = Object.entries(metric).filter(([k]) => k !== "__name__").map(([k, v]) => `${k}="${v}"`);
  return `${metric.__name__ || ""}{${labels.join(", ")}}`;
}

// Numbers as Grafana's units show them, for the units the dashboard uses.
function scaled(value, base, units) {
  let i = 0;
  while (Math.abs(value) >= base && i < units.length - 1) { value /= base; i++; }
  return `${trim(value)}${units[i]}`;
}

function trim(value) {
  return String(Number(value.toPrecision(3)));
}

function format(value, unit) {
  switch (unit) {
    case "bytes": return scaled(value, 1024, [" B", " KiB", " MiB", " GiB", " TiB"]);
    case "Bps": return scaled(value, 1000, [" B/s", " kB/s", " MB/s", " GB/s"]);
    case "reqps": return `${scaled(value, 1000, ["", " K", " Mil", " Bil"])} req/s`;
    case "percentunit": return `${trim(value * 100)}%`;
    case "percent": return `${trim(value)}%`;
    case "ms": return format(value / 1000, "s");
    case "s":
      if (value === 0) return "0 s";
      if (Math.abs(value) < 1e-3) return `${trim(value * 1e6)} µs`;
      if (Math.abs(value) < 1) return `${trim(value * 1e3)} ms`;
      return `${trim(value)} s`;
    default: return scaled(value, 1000, ["", " K", " Mil", " Bil", " Tri"]);
  }
}

// A round step (1, 2 or 5 times a power of ten) giving about `count`
// ticks; for sizes in bytes, round in the KiB, MiB, ... the labels show.
function niceStep(span, count, unit) {
  if (unit === "bytes" && span >= 1024) {
    const base = 1024 ** Math.min(4, Math.floor(Math.log(span) / Math.log(1024)));
    return niceStep(span / base, count) * base;
  }
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

function clock(t_s) {
  return new Date(t_s * 1000).toISOString().slice(11, 19);
}

function drawChart(rect, series, unit, start_s, end_s, custom) {
  const width = Math.max(rect.width, 100);
  const height = Math.max(rect.height, 60);
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
  const values = series.flatMap((s) => s.points.map(([, v]) => v)).filter(Number.isFinite);
  let lo = Math.min(0, ...values);
  let hi = Math.max(...values);
  if (!(hi > lo)) hi = lo + 1;
  const step = niceStep(hi - lo, Y_TICKS, unit);
  hi = Math.ceil(hi / step) * step;
  lo = Math.floor(lo / step) * step;
  const plotW = width - AXIS_LEFT_PX - AXIS_RIGHT_PX;
  const plotH = height - AXIS_BOTTOM_PX - 6;
  const x = (t) => AXIS_LEFT_PX + ((t - start_s) / (end_s - start_s)) * plotW;
  const y = (v) => 6 + plotH - ((v - lo) / (hi - lo)) * plotH;
  for (let v = lo; v <= hi + step / 2; v += step) {
    chart.append(svg("line", { class: "grid", x1: AXIS_LEFT_PX, x2: AXIS_LEFT_PX + plotW, y1: y(v), y2: y(v) }));
    chart.append(svg("text", { x: AXIS_LEFT_PX - 6, y: y(v) + 3, "text-anchor": "end" }, format(v, unit)));
  }
  const tick_s = TIME_STEPS_S.find((s) => (end_s - start_s) / s <= X_TICKS_MAX) || 3600;
  // The first time label clear of the y axis's labels.
  const first_s = Math.ceil((start_s + tick_s / 4) / tick_s) * tick_s;
  for (let t = first_s; t <= end_s; t += tick_s) {
    chart.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: 6, y2: 6 + plotH }));
    chart.append(svg("text", { x: x(t), y: height - 4, "text-anchor": "middle" }, clock(t)));
  }
  const lineWidth = custom.lineWidth ?? 1;
  const fillOpacity = (custom.fillOpacity ?? 0) / 100;
  for (const s of series) {
    // A NaN (a quantile of an empty window) is a gap, as in Grafana.
    const runs = [[]];
    for (const [t, v] of s.points) {
      if (Number.isFinite(v)) runs[runs.length - 1].push([x(t), y(v)]);
      else if (runs[runs.length - 1].length) runs.push([]);
    }
    for (const run of runs.filter((r) => r.length)) {
      const d = run.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)} ${py.toFixed(1)}`).join(" ");
      if (fillOpacity > 0 && run.length > 1) {
        const base = y(Math.max(lo, 0)).toFixed(1);
        chart.append(svg("path", {
          d: `${d} L${run[run.length - 1][0].toFixed(1)} ${base} L${run[0][0].toFixed(1)} ${base} Z`,
          fill: s.color, "fill-opacity": fillOpacity, stroke: "none",
        }));
      }
      chart.append(svg("path", { class: "series", d, fill: "none", stroke: s.color, "stroke-width": lineWidth }));
    }
  }
  return chart;
}

async function drawPanel(node, panel, dashboard, start_s, end_s) {
  const defaults = (panel.fieldConfig && panel.fieldConfig.defaults) || {};
  const plot = el("div", { class: "plot" });
  node.append(plot);
  const { vars, interval_s } = variables(dashboard, node.clientWidth);
  const series = [];
  try {
    for (const target of panel.targets || []) {
      if (target.hide) continue;
      for (const result of await queryRange(substitute(target.expr, vars), start_s, end_s, interval_s)) {
        series.push({
          name: legendName(target, result.metric),
          points: result.values.map(([t, v]) => [t, Number(v)]),
        });
      }
    }
  } catch (error) {
    node.dataset.error = error.message;
    plot.append(el("div", { class: "error" }, error.message));
    return;
  }
  series.forEach((s, i) => { s.color = COLORS[i % COLORS.length]; });
  const drawn = series.filter((s) => s.points.filter(([, v]) => Number.isFinite(v)).length >= 2);
  node.dataset.series = drawn.length;
  if (!drawn.length) {
    plot.append(el("div", { class: "nodata" }, "No data"));
    return;
  }
  const legend = (panel.options && panel.options.legend) || {};
  if (legend.showLegend !== false) {
    node.append(el("div", { class: "legend" },
      ...drawn.map((s) => el("span", { style: `--swatch: ${s.color}` }, s.name))));
  }
  // The plot takes what the title and the legend leave.
  plot.append(drawChart(plot.getBoundingClientRect(), drawn, defaults.unit, start_s, end_s, defaults.custom || {}));
}

async function main() {
  const grid = document.getElementById("grid");
  const dashboard = await (await fetch(params.get("dashboard") || "shoal.json", { cache: "no-store" })).json();
  document.getElementById("title").textContent = dashboard.title;
  document.getElementById("range").textContent = `last ${RANGE_S} s, scraped every ${SCRAPE_S} s`;
  document.getElementById("source").textContent = "drawn from the dashboard's JSON and Prometheus by the test, not by Grafana";
  const column_px = (grid.clientWidth + GAP_PX) / GRID_COLUMNS;
  let rows = 0;
  const end_s = Math.floor(Date.now() / 1000);
  const start_s = end_s - RANGE_S;
  const drawing = [];
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos;
    rows = Math.max(rows, y + h);
    const node = el("section", { class: "panel", "data-title": panel.title }, el("h2", {}, panel.title));
    Object.assign(node.style, {
      left: `${x * column_px}px`,
      top: `${y * (ROW_PX + GAP_PX)}px`,
      width: `${w * column_px - GAP_PX}px`,
      height: `${h * ROW_PX + (h - 1) * GAP_PX}px`,
    });
    grid.append(node);
    if (panel.type !== "timeseries") {
      node.dataset.error = `panel type ${panel.type} is not drawn here`;
      node.append(el("div", { class: "error" }, node.dataset.error));
      continue;
    }
    drawing.push(drawPanel(node, panel, dashboard, start_s, end_s));
  }
  grid.style.height = `${rows * (ROW_PX + GAP_PX)}px`;
  await Promise.all(drawing);
  document.body.dataset.loaded = "done";
}

main().catch((error) => {
  document.getElementById("grid").append(el("div", { class: "error" }, String(error)));
  document.body.dataset.loaded = "error";
});
