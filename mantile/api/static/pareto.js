// Pareto chart and SLA search over plans and hardware: ONE POST /sweep (every checked system x tensor
// parallel 1-64 x batch 1-1024, with the form's model, load and serving settings) drawn as tokens/s
// per GPU vs tokens/s per user, one colour per system, each system's Pareto front joined by a line;
// then POST /sla on the same grid ranks the plans meeting the form's SLA. Exports: PNG and CSV.
"use strict";

const pareto = { rows: [], timer: null, generation: 0 };
const PARETO_DEFAULT = ["nvidia_h100_80gb", "nvidia_h200_141gb", "nvidia_b200_180gb", "amd_mi300x"];
const PARETO_BATCHES = powersOf2(1024);
const MAX_PARETO_TP = 64;
const SLA_COLUMNS = [["hardware", "hardware_id"], ["tp", "tp"], ["batch", "batch_size"], ["TTFT (ms)", "ttft_ms"],
  ["TPOT (ms)", "tpot_ms"], ["tokens/s per GPU", "throughput_tokens_per_s_per_device"],
  ["tokens/s per user", "tokens_per_s_per_user"], ["$ per M tokens", "cost_usd_per_million_tokens"]];

// Ten distinct colours (Tableau 10), given to the checked systems in catalog order.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#7f7f7f"];

function hardwareColor(id) {
  const i = checkedHardware().indexOf(id);
  return i < 0 ? "#c3c8d0" : PALETTE[i % PALETTE.length];
}

function paintSwatches() {
  for (const box of document.querySelectorAll("#pareto-hardware input")) {
    box.nextElementSibling.style.background = hardwareColor(box.value);
  }
}

const checkedHardware = () => [...document.querySelectorAll("#pareto-hardware input:checked")].map(el => el.value);

function sweepBody() {
  const sys = systemBody(readConfig()), hw = checkedHardware();
  const most = Math.max(1, ...hw.map(id => state.hardware[id].num_devices));
  const grid = gridOf(sys);
  delete grid.embedding_tensor_parallel;  // follows each plan's tensor parallel
  return { ...grid, hardware_config: hw, tensor_parallel: powersOf2(Math.min(most, MAX_PARETO_TP)),
    context_parallel: 1, sequence_parallel: 1, expert_parallel: 1, pipeline_parallel: 1, data_parallel: 1,
    batch_size: PARETO_BATCHES };
}

function point(r, front) {
  return { x: r.tokens_per_s_per_user, y: r.throughput_tokens_per_s_per_device, faint: !front, small: !front,
    offLine: !front, data: { hardware: r.hardware_id, tp: r.tp, batch: r.batch_size, front: front ? 1 : 0 },
    title: `${r.hardware_id} tp=${r.tp} batch=${r.batch_size}: ${fmt(r.throughput_tokens_per_s_per_device)} ` +
      `tokens/s per GPU, ${fmt(r.tokens_per_s_per_user)} tokens/s per user` +
      (r.cost_usd_per_million_tokens === null ? "" : `, $${fmt(r.cost_usd_per_million_tokens)} per M tokens`) };
}

function renderPareto(result) {
  const el = $("pareto-chart");
  if (!result) { el.replaceChildren(); el._spec = null; return; }
  const series = checkedHardware().map(id => {
    const front = result.pareto.filter(r => r.hardware_id === id)
      .sort((a, b) => a.tokens_per_s_per_user - b.tokens_per_s_per_user);
    const rest = result.rows.filter(r => r.hardware_id === id);
    return { name: id, color: hardwareColor(id), line: "solid",
      points: [...rest.map(r => point(r, false)), ...front.map(r => point(r, true))] };
  }).filter(s => s.points.length);
  window.drawChart(el, { xLabel: "tokens/s per user", yLabel: "tokens/s per GPU", xLog: true, yLog: true,
    legend: true, series });
  $("pareto-count").textContent = `${result.points.toLocaleString("en-US")} points, ` +
    `${result.rows.length.toLocaleString("en-US")} fit, ${result.pareto.length} on the fronts`;
}

function renderSla(result, sla) {
  const table = $("sla-table");
  if (!result) { table.tHead.replaceChildren(); table.tBodies[0].replaceChildren(); $("sla-summary").textContent = ""; return; }
  const targets = Object.entries(sla).map(([k, v]) => `${k} ≤ ${v}`).join(", ");
  $("sla-summary").textContent = (targets ? `${result.meeting} of ${result.fitting} fitting plans meet ${targets}` :
    `no SLA set: the ${result.fitting} fitting plans`) + `, ranked by ${$("rank_by").selectedOptions[0].text}` +
    (result.meeting === 0 && result.best_failing_misses ? `; closest: ${result.best_failing.hardware_id} ` +
      `tp=${result.best_failing.tp} batch=${result.best_failing.batch_size} (${result.best_failing_misses})` : "");
  const head = document.createElement("tr");
  head.append(...SLA_COLUMNS.map(([label]) => cell("th", label)));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...result.top.map(r => {
    const tr = document.createElement("tr");
    tr.append(...SLA_COLUMNS.map(([, k]) => cell("td", fmt(r[k]), { key: k, value: String(r[k]) })));
    return tr;
  }));
}

async function runSweep() {
  const gen = ++pareto.generation, body = sweepBody(), sla = slaOf(readConfig());
  $("pareto").dataset.state = "loading";
  const slaBody = { ...body, sla, rank_by: $("rank_by").value, top: 5 };
  const [sweep, ranked] = await Promise.allSettled([
    api("/sweep", { ...body, fits_only: true }), api("/sla", slaBody)]);
  if (gen !== pareto.generation) return;
  const failed = [sweep, ranked].find(r => r.status === "rejected");
  showError($("pareto-error"), failed ? failed.reason : null);
  pareto.rows = failed ? [] : sweep.value.rows;
  renderPareto(failed ? null : sweep.value);
  renderSla(failed ? null : ranked.value, sla);
  $("pareto").dataset.request = JSON.stringify(body);
  $("pareto").dataset.state = failed ? "error" : "ready";
}

function exportSweepCsv() {
  if (!pareto.rows.length) return;
  const keys = Object.keys(pareto.rows[0]);
  download(new Blob([csvText([keys, ...pareto.rows.map(r => keys.map(k => r[k]))])], { type: "text/csv" }),
    "mantile-sweep.csv");
}

state.hooks.push({
  init(params) {
    const chosen = params.has("hw") ? params.get("hw").split(",") : PARETO_DEFAULT;
    $("pareto-hardware").replaceChildren(...Object.keys(state.hardware).map(id => {
      const label = document.createElement("label"), box = document.createElement("input");
      box.type = "checkbox";
      box.value = id;
      box.checked = chosen.includes(id);
      box.addEventListener("change", () => { paintSwatches(); writeUrl(); this.changed(); });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      label.append(box, swatch, id);
      return label;
    }));
    paintSwatches();
    $("export-pareto-png").addEventListener("click", () => downloadPng($("pareto-chart"), "mantile-pareto.png"));
    $("export-pareto-csv").addEventListener("click", exportSweepCsv);
    this.changed();
  },
  write(params) { params.set("hw", checkedHardware().join(",")); },
  changed() {
    clearTimeout(pareto.timer);
    pareto.timer = setTimeout(runSweep, 400);
  },
});
