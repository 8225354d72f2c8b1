// Latency vs throughput chart, drawn as inline SVG (no library): one point per batch size.
// x: tokens/s per device on a log scale; y: the chosen latency (ms) on a linear scale from 0.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceStep(span, target) {
  const raw = span / target;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return mag * (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10);
}

function linearTicks(max) {
  const step = niceStep(max, 5);
  const ticks = [];
  for (let v = 0; v <= max * 1.0001; v += step) ticks.push(v);
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * Math.pow(10, e);
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks;
}

function shortNumber(v) {
  if (v >= 1e6) return (v / 1e6).toPrecision(3).replace(/\.?0+$/, "") + "M";
  if (v >= 1e3) return (v / 1e3).toPrecision(3).replace(/\.?0+$/, "") + "k";
  return String(+v.toPrecision(3));
}

// points: [{batch_size, fits, throughput_tokens_per_s_per_device, <yKey>}, ...]
function drawChart(container, points, yKey, yLabel, currentBatch) {
  const W = 760, H = 360, m = { left: 62, right: 24, top: 18, bottom: 48 };
  const pts = points.filter(p => p[yKey] > 0 && p.throughput_tokens_per_s_per_device > 0);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "latency vs throughput" });
  container.replaceChildren(svg);
  if (!pts.length) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no points"));
    return;
  }
  const xs = pts.map(p => p.throughput_tokens_per_s_per_device), ys = pts.map(p => p[yKey]);
  let xlo = Math.min(...xs) / 1.4, xhi = Math.max(...xs) * 1.4;
  const yhi = Math.max(...ys) * 1.12;
  const X = v => m.left + (Math.log(v) - Math.log(xlo)) / (Math.log(xhi) - Math.log(xlo)) * (W - m.left - m.right);
  const Y = v => H - m.bottom - v / yhi * (H - m.top - m.bottom);

  const grid = svgEl("g", { class: "grid" }), axis = svgEl("g", { class: "axis" });
  for (const t of linearTicks(yhi)) {
    grid.append(svgEl("line", { x1: m.left, x2: W - m.right, y1: Y(t), y2: Y(t) }));
    axis.append(svgEl("text", { x: m.left - 8, y: Y(t) + 4, "text-anchor": "end" }, shortNumber(t)));
  }
  for (const t of logTicks(xlo, xhi)) {
    grid.append(svgEl("line", { x1: X(t), x2: X(t), y1: m.top, y2: H - m.bottom }));
    axis.append(svgEl("text", { x: X(t), y: H - m.bottom + 16, "text-anchor": "middle" }, shortNumber(t)));
  }
  axis.append(svgEl("line", { x1: m.left, x2: W - m.right, y1: H - m.bottom, y2: H - m.bottom }));
  axis.append(svgEl("line", { x1: m.left, x2: m.left, y1: m.top, y2: H - m.bottom }));
  axis.append(svgEl("text", { x: (m.left + W - m.right) / 2, y: H - 10, "text-anchor": "middle" },
    "throughput per device (tokens/s)"));
  axis.append(svgEl("text", { x: 14, y: (m.top + H - m.bottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(m.top + H - m.bottom) / 2})` }, yLabel));
  svg.append(grid, axis);

  // Solid line through the points that fit, dashed from the last one that fits through the rest.
  const firstBad = pts.findIndex(p => !p.fits);
  const lines = [[pts.filter(p => p.fits), "curve"],
    [firstBad < 0 ? [] : pts.slice(Math.max(0, firstBad - 1)), "curve nofit"]];
  for (const [list, cls] of lines) {
    if (list.length < 2) continue;
    const xy = list.map(p => `${X(p.throughput_tokens_per_s_per_device).toFixed(1)},${Y(p[yKey]).toFixed(1)}`);
    svg.append(svgEl("polyline", { class: cls, points: xy.join(" ") }));
  }
  for (const p of pts) {
    const cx = X(p.throughput_tokens_per_s_per_device), cy = Y(p[yKey]);
    const cls = [p.fits ? "" : "nofit", p.batch_size === currentBatch ? "current" : ""].join(" ").trim();
    const c = svgEl("circle", { cx, cy, r: p.batch_size === currentBatch ? 7 : 5, class: cls,
      "data-batch-size": p.batch_size });
    c.append(svgEl("title", {}, `batch ${p.batch_size}: ${p[yKey].toPrecision(4)} ms, ` +
      `${p.throughput_tokens_per_s_per_device.toPrecision(4)} tokens/s per device` + (p.fits ? "" : " (does not fit)")));
    svg.append(c, svgEl("text", { class: "label", x: cx + 8, y: cy - 8 }, `b=${p.batch_size}`));
  }
}

window.drawChart = drawChart;
