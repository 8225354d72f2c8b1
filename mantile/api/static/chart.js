// Scatter/line charts as inline SVG (no library), drawn at the container's pixel width so text stays
// 12 px on a phone; colours and fonts are attributes (not CSS) so an exported PNG looks the same.
// spec = {xLabel, yLabel, xLog, yLog, legend, series: [{name, color, line: "solid"|"dashed"|null,
//         points: [{x, y, title, hollow, big, small, faint, label, noDot, offLine, data: {attr: value}}]}]}
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', sans-serif";
const INK = "#1d2330", MUTED = "#5b6475", GRID = "#eef0f3", AXIS = "#9aa3b2";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceStep(span, target) {
  const raw = span / target, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
  return mag * (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10);
}

function linearTicks(lo, hi, target) {
  const step = niceStep(hi - lo, target), ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi * 1.0001; v += step) ticks.push(v);
  return ticks;
}

function logTicks(lo, hi, target) {
  let ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * Math.pow(10, e);
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  if (ticks.length > target) ticks = ticks.filter(v => String(v).startsWith("1"));
  return ticks;
}

function shortNumber(v) {
  if (v >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (v >= 1e3) return +(v / 1e3).toPrecision(3) + "k";
  return String(+v.toPrecision(3));
}

// An axis: value -> pixel, its ticks, and its range padded around the data.
function scale(values, log, from, to, target) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (log) { lo /= 1.3; hi *= 1.3; } else { lo = Math.min(0, lo); hi = hi * 1.1 || 1; }
  const f = log ? Math.log : v => v;
  const px = v => from + (f(v) - f(lo)) / (f(hi) - f(lo) || 1) * (to - from);
  return { px, ticks: log ? logTicks(lo, hi, target) : linearTicks(lo, hi, target) };
}

function text(x, y, s, attrs) {
  return svgEl("text", { x, y, fill: MUTED, "font-size": 12, "font-family": FONT, ...attrs }, s);
}

// Legend rows above the plot; returns the height they take.
function legend(svg, series, W) {
  let x = 12, y = 18;
  for (const s of series) {
    const w = 26 + s.name.length * 7.2;
    if (x + w > W - 8 && x > 12) { x = 12; y += 18; }
    const g = svgEl("g", { class: "legend-item", "data-series": s.name });
    g.append(svgEl("circle", { cx: x + 5, cy: y - 4, r: 5, fill: s.color }), text(x + 14, y, s.name, { fill: INK }));
    svg.append(g);
    x += w;
  }
  return y + 10;
}

function drawChart(container, spec) {
  container._spec = spec;
  const W = Math.max(280, Math.floor(container.clientWidth || 760)), narrow = W < 520;
  const H = narrow ? 320 : 380;
  const svg = svgEl("svg", { xmlns: SVG_NS, width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": spec.yLabel + " vs " + spec.xLabel });
  svg.append(svgEl("rect", { width: W, height: H, fill: "#fff" }));
  container.replaceChildren(svg);
  const all = spec.series.flatMap(s => s.points).filter(p => p.x > 0 && p.y > 0);
  const top = spec.legend ? legend(svg, spec.series, W) : 14;
  if (!all.length) {
    svg.append(text(W / 2, H / 2, "no points", { "text-anchor": "middle" }));
    return;
  }
  const m = { left: narrow ? 48 : 62, right: spec.series.some(s => s.points.some(p => p.label)) ? 40 : 16, top, bottom: 44 };
  const X = scale(all.map(p => p.x), spec.xLog, m.left, W - m.right, narrow ? 4 : 8);
  const Y = scale(all.map(p => p.y), spec.yLog, H - m.bottom, m.top, narrow ? 5 : 7);
  for (const t of Y.ticks) {
    svg.append(svgEl("line", { x1: m.left, x2: W - m.right, y1: Y.px(t), y2: Y.px(t), stroke: GRID }));
    svg.append(text(m.left - 6, Y.px(t) + 4, shortNumber(t), { "text-anchor": "end" }));
  }
  for (const t of X.ticks) {
    svg.append(svgEl("line", { x1: X.px(t), x2: X.px(t), y1: m.top, y2: H - m.bottom, stroke: GRID }));
    svg.append(text(X.px(t), H - m.bottom + 16, shortNumber(t), { "text-anchor": "middle" }));
  }
  const axis = { stroke: AXIS };
  svg.append(svgEl("line", { x1: m.left, x2: W - m.right, y1: H - m.bottom, y2: H - m.bottom, ...axis }),
    svgEl("line", { x1: m.left, x2: m.left, y1: m.top, y2: H - m.bottom, ...axis }),
    text((m.left + W - m.right) / 2, H - 8, spec.xLabel, { "text-anchor": "middle", fill: INK }),
    text(13, (m.top + H - m.bottom) / 2, spec.yLabel, { "text-anchor": "middle", fill: INK,
      transform: `rotate(-90 13 ${(m.top + H - m.bottom) / 2})` }));
  for (const s of spec.series) drawSeries(svg, s, X.px, Y.px);
}

function drawSeries(svg, s, X, Y) {
  const pts = s.points.filter(p => p.x > 0 && p.y > 0), onLine = pts.filter(p => !p.offLine);
  if (s.line && onLine.length > 1) {
    svg.append(svgEl("polyline", { points: onLine.map(p => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" "),
      fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.line === "dashed" ? "4 3" : "none",
      opacity: s.line === "dashed" ? 0.6 : 1 }));
  }
  for (const p of pts) {
    if (p.noDot) continue;
    const c = svgEl("circle", { cx: X(p.x), cy: Y(p.y), r: p.big ? 7 : p.small ? 3 : 5,
      fill: p.hollow ? "#fff" : p.fillColor || s.color, stroke: p.hollow ? "#8d97a8" : "#fff",
      "stroke-width": 1.5, opacity: p.faint ? 0.35 : 1, "data-series": s.name });
    for (const [k, v] of Object.entries(p.data || {})) c.setAttribute("data-" + k, v);
    if (p.title) c.append(svgEl("title", {}, p.title));
    svg.append(c);
    if (p.label) svg.append(text(X(p.x) + 8, Y(p.y) - 8, p.label, { fill: INK, "font-size": 11 }));
  }
}

// Redraw every chart at its new width when the window is resized.
window.addEventListener("resize", () => {
  clearTimeout(window._chartResize);
  window._chartResize = setTimeout(() => {
    for (const el of document.querySelectorAll(".chart")) if (el._spec) drawChart(el, el._spec);
  }, 100);
});

// A PNG of a chart's SVG, drawn at twice its size, downloaded as `name`.
function downloadPng(container, name) {
  const svg = container.querySelector("svg");
  const w = Number(svg.getAttribute("width")), h = Number(svg.getAttribute("height"));
  const img = new Image();
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = 2 * w; canvas.height = 2 * h;
    const ctx = canvas.getContext("2d");
    ctx.scale(2, 2);
    ctx.drawImage(img, 0, 0);
    canvas.toBlob(blob => download(blob, name), "image/png");
  };
  img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(new XMLSerializer().serializeToString(svg));
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

window.drawChart = drawChart;
