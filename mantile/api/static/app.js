// Mantile web page: a form over the stateless HTTP API. Every number shown comes from the API; this
// file holds the form, its state in the URL (so a copied link reproduces the view) and the results of
// the configuration being edited. compare.js keeps configurations side by side; pareto.js runs the
// sweep, the Pareto chart and the SLA search.
"use strict";

const $ = id => document.getElementById(id);
const KINDS = ["attention", "feedforward", "norm", "embedding"];
const DTYPE_ORDER = ["bf16", "fp16", "fp8", "int8", "fp4", "fp32", "tf32"];
// Every control, by id: its value is the page's state (and a key of the query string).
const CONTROLS = ["model_id", "hardware_config", "batch_size", "input_seq", "output_seq", "dtype", "kv_dtype",
  "attention_tp", "attention_cp", "feedforward_sp", "feedforward_ep", "norm_tp", "embedding_tp",
  "pipeline_parallel", "data_parallel", "serving", "batching", "comm_overlap", "max_prefill_tokens",
  "max_num_batched_tokens", "memory_reserve_fraction", "spec_method", "spec_num_tokens", "spec_acceptance",
  "spec_draft_model", "prefix_cache_hit_rate", "sla_ttft_ms", "sla_tpot_ms", "rank_by"];
const VIEW = ["layer_phase", "chart_y"];
const DEFAULTS = { model_id: "llama_3.3_70b", hardware_config: "nvidia_nvl72_rack", attention_tp: "8",
  serving: "pytorch" };
// Body field (as named in an error's detail) -> the input that sets it.
const FIELD_INPUTS = {
  model_id: "model_id", hardware_config: "hardware_config", batch_size: "batch_size", dtype: "dtype",
  kv_dtype: "kv_dtype", input_seq: "input_seq", seq_length: "input_seq", kv_length: "input_seq",
  output_seq: "output_seq", tensor_parallel: "attention_tp", context_parallel: "attention_cp",
  sequence_parallel: "feedforward_sp", expert_parallel: "feedforward_ep", pipeline_parallel: "pipeline_parallel",
  data_parallel: "data_parallel", serving: "serving", batching: "batching", comm_overlap: "comm_overlap",
  max_prefill_tokens: "max_prefill_tokens", max_num_batched_tokens: "max_num_batched_tokens",
  memory_reserve_fraction: "memory_reserve_fraction",
  spec_method: "spec_method", spec_num_tokens: "spec_num_tokens", spec_acceptance: "spec_acceptance",
  spec_draft_model: "spec_draft_model", prefix_cache_hit_rate: "prefix_cache_hit_rate",
  "layers.attention.tensor_parallel": "attention_tp", "layers.attention.context_parallel": "attention_cp",
  "layers.feedforward.tensor_parallel": "attention_tp", "layers.feedforward.sequence_parallel": "feedforward_sp",
  "layers.feedforward.expert_parallel": "feedforward_ep", "layers.norm.tensor_parallel": "norm_tp",
  "layers.embedding.tensor_parallel": "embedding_tp", "sla.ttft_ms": "sla_ttft_ms", "sla.tpot_ms": "sla_tpot_ms",
};
const state = { models: {}, hardware: {}, servings: [], generation: 0, curve: null, batch: null, timer: null,
  hooks: [] };

async function api(url, body) {
  const opts = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(url, opts);
  let data;
  try { data = await r.json(); } catch { data = { message: `${r.status} ${r.statusText}` }; }
  if (!r.ok) {
    const e = new Error(data.message || `HTTP ${r.status}`);
    e.detail = data.detail || [];
    throw e;
  }
  return data;
}

// ---- formatting -------------------------------------------------------------------------------
function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (v === 0) return "0";
  return String(+v.toPrecision(3));
}

function show(id, value) {
  const el = $(id);
  el.textContent = fmt(value);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
}

function options(select, values, label = v => String(v)) {
  const keep = select.value;
  select.replaceChildren(...values.map(v => new Option(label(v), String(v))));
  if (values.map(String).includes(keep)) select.value = keep;
}

const powersOf2 = max => { const out = []; for (let v = 1; v <= max; v *= 2) out.push(v); return out; };

function number(text) {  // what the user typed: a number, or the raw text for the API to reject
  text = String(text ?? "").trim();
  if (text === "") return null;
  const v = Number(text);
  return Number.isFinite(v) ? v : text;
}

// ---- the configuration: controls <-> a plain object of strings <-> request bodies -----------------
const readConfig = () => Object.fromEntries(CONTROLS.map(id => [id, $(id).value]));

function applyConfig(cfg) {
  // Model and hardware first (they decide the other selects' options), then the attention tp.
  for (const group of [["model_id", "hardware_config"], ["attention_tp"], ["attention_cp", "dtype"], CONTROLS]) {
    for (const id of group) if (cfg[id] !== undefined) $(id).value = cfg[id];
    refreshPlanOptions();
  }
}

function systemBody(c) {
  const tp = Number(c.attention_tp), ep = Number(c.feedforward_ep) || 1, dtype = c.dtype;
  const feedforward = { tensor_parallel: tp / ep, sequence_parallel: Number(c.feedforward_sp), dtype };
  if (state.models[c.model_id] && state.models[c.model_id].is_moe) feedforward.expert_parallel = ep;
  const body = {
    model_id: c.model_id, hardware_config: c.hardware_config, batch_size: number(c.batch_size),
    input_seq: number(c.input_seq), output_seq: number(c.output_seq), dtype,
    layers: {
      attention: { tensor_parallel: tp, context_parallel: Number(c.attention_cp), dtype },
      feedforward,
      norm: { tensor_parallel: Number(c.norm_tp), dtype },
      embedding: { tensor_parallel: Number(c.embedding_tp), dtype },
    },
    pipeline_parallel: Number(c.pipeline_parallel), data_parallel: Number(c.data_parallel), serving: c.serving,
  };
  Object.assign(body, servingOptions(c));
  if (c.kv_dtype) body.kv_dtype = c.kv_dtype;
  return body;
}

// The serving fields a configuration sets (empty: the profile's own value).
function servingOptions(c) {
  const out = {};
  if (c.batching) out.batching = c.batching;
  if (c.comm_overlap) out.comm_overlap = c.comm_overlap === "true";
  if (String(c.max_prefill_tokens).trim()) out.max_prefill_tokens = number(c.max_prefill_tokens);
  if (String(c.max_num_batched_tokens ?? "").trim()) {
    out.max_num_batched_tokens = number(c.max_num_batched_tokens);
  }
  if (String(c.memory_reserve_fraction).trim()) out.memory_reserve_fraction = number(c.memory_reserve_fraction);
  if (c.spec_method && c.spec_method !== "none") {  // speculative decoding (mantile/serving/speculative.py)
    out.spec_method = c.spec_method;
    out.spec_num_tokens = String(c.spec_num_tokens).trim() ? number(c.spec_num_tokens) : 3;
    if (String(c.spec_acceptance).trim()) out.spec_acceptance = number(c.spec_acceptance);
    if (String(c.spec_draft_model).trim()) out.spec_draft_model = String(c.spec_draft_model).trim();
  }
  if (String(c.prefix_cache_hit_rate).trim()) out.prefix_cache_hit_rate = number(c.prefix_cache_hit_rate);
  return out;
}

function slaOf(c) {
  const sla = {};
  if (String(c.sla_ttft_ms).trim()) sla.ttft_ms = number(c.sla_ttft_ms);
  if (String(c.sla_tpot_ms).trim()) sla.tpot_ms = number(c.sla_tpot_ms);
  return sla;
}

// null when no target is set; else whether the row fits and meets every target.
function meetsSla(row, sla) {
  if (!Object.keys(sla).length) return null;
  return Boolean(row.fits) && Object.entries(sla).every(([k, bound]) => row[k] !== null && row[k] <= bound);
}

// One instance of each layer type, split as the system body splits it. Sequence parallel: the
// feedforward's or the norm's choice (both mean "over the tensor-parallel group").
function layerBody(kind, sys, phase) {
  const L = sys.layers, sp = Math.max(L.feedforward.sequence_parallel, L.norm.tensor_parallel);
  const body = {
    model_id: sys.model_id, hardware_config: sys.hardware_config, layer_type: kind, phase,
    batch_size: sys.batch_size, seq_length: sys.input_seq, dtype: sys.dtype, serving: sys.serving,
    tensor_parallel: kind === "embedding" ? L.embedding.tensor_parallel : L.attention.tensor_parallel,
    context_parallel: L.attention.context_parallel,
    sequence_parallel: kind === "embedding" ? 1 : sp,
    expert_parallel: kind === "feedforward" ? (L.feedforward.expert_parallel || 1) : 1,
  };
  if (sys.kv_dtype) body.kv_dtype = sys.kv_dtype;
  return body;
}

// The study grid of one plan (the flat keys of POST /sweep, /capacity, /sla).
function gridOf(sys) {
  const L = sys.layers;
  const grid = {
    model_id: sys.model_id, hardware_config: sys.hardware_config, input_seq: sys.input_seq,
    output_seq: sys.output_seq, tensor_parallel: L.attention.tensor_parallel,
    context_parallel: L.attention.context_parallel,
    sequence_parallel: Math.max(L.feedforward.sequence_parallel, L.norm.tensor_parallel),
    expert_parallel: L.feedforward.expert_parallel || 1, embedding_tensor_parallel: L.embedding.tensor_parallel,
    pipeline_parallel: sys.pipeline_parallel, data_parallel: sys.data_parallel, dtype: sys.dtype,
    serving: sys.serving, ...servingOptions(readConfig()),
  };
  if (sys.kv_dtype) grid.kv_dtype = sys.kv_dtype;
  return grid;
}

// ---- the form -----------------------------------------------------------------------------------
const model = () => state.models[$("model_id").value];
const hardware = () => state.hardware[$("hardware_config").value];

function describeSelection() {
  const m = model(), h = hardware();
  $("model-info").textContent = `${m.num_hidden_layers} layers · ${(m.total_params / 1e9).toFixed(1)} B params` +
    ` · ${m.num_attention_heads} heads / ${m.num_key_value_heads} KV · context ${m.max_position_embeddings.toLocaleString("en-US")}` +
    (m.is_moe ? ` · ${m.num_local_experts} experts, top-${m.num_experts_per_tok}` : "");
  $("hardware-info").textContent = `${h.num_devices} × ${h.device_name} · ${h.memory_gib_per_device} GiB · ` +
    `${h.hbm_bandwidth_tb_per_s} TB/s · ${(h.peak_bf16_tflops || 0).toLocaleString("en-US")} TFLOP/s bf16`;
  $("expert-row").hidden = !m.is_moe;
}

function refreshPlanOptions() {
  const m = model(), h = hardware(), n = h.num_devices;
  const dtypes = DTYPE_ORDER.filter(d => d in h.peak_tflops);
  options($("dtype"), dtypes);
  options($("kv_dtype"), ["", ...dtypes], v => (v ? v : "same as dtype"));
  options($("attention_tp"), powersOf2(n));
  const tp = Number($("attention_tp").value);
  options($("attention_cp"), powersOf2(Math.floor(n / tp)));
  const cp = Number($("attention_cp").value);
  const followsTp = $("embedding_tp").dataset.tp === undefined || $("embedding_tp").value === $("embedding_tp").dataset.tp;
  options($("embedding_tp"), powersOf2(tp * cp));
  if (followsTp) $("embedding_tp").value = String(tp);
  $("embedding_tp").dataset.tp = String(tp);
  options($("feedforward_sp"), [...new Set([1, tp])], v => (v === 1 ? "1 (off)" : `${v} (= tp)`));
  options($("norm_tp"), [...new Set([1, tp])], v => (v === 1 ? "1 (replicated)" : `${v} (sequence parallel)`));
  options($("feedforward_ep"), m.is_moe ? powersOf2(Math.min(tp, m.num_local_experts)) : [1]);
  $("feedforward_tp").textContent = String(tp / Number($("feedforward_ep").value));
  options($("pipeline_parallel"), powersOf2(Math.min(Math.floor(n / tp / cp), m.num_hidden_layers)));
  const pp = Number($("pipeline_parallel").value);
  options($("data_parallel"), powersOf2(Math.floor(n / tp / cp / pp)));
  options($("serving"), state.servings);
  $("input_seq").max = $("output_seq").max = String(m.max_position_embeddings);
}

// A new model: keep the prompt and the answer inside its context (max_position_embeddings).
function clampToContext() {
  const maxPos = model().max_position_embeddings;
  let inp = number($("input_seq").value), out = number($("output_seq").value);
  if (!Number.isInteger(inp) || !Number.isInteger(out) || inp + out <= maxPos) return;
  out = Math.min(out, Math.floor(maxPos / 4));
  inp = Math.min(inp, maxPos - out);
  $("input_seq").value = String(inp);
  $("output_seq").value = String(out);
}

// ---- the URL: every control, the view, the compared configurations, the Pareto hardware ---------
function writeUrl() {
  const params = new URLSearchParams();
  for (const id of [...CONTROLS, ...VIEW]) if ($(id).value !== "") params.set(id, $(id).value);
  for (const hook of state.hooks) hook.write && hook.write(params);
  history.replaceState(null, "", "?" + params.toString());
}

function readUrl() {
  const params = new URLSearchParams(location.search);
  const cfg = {};
  for (const id of CONTROLS) if (params.has(id)) cfg[id] = params.get(id);
  return { params, cfg };
}

// ---- rendering ----------------------------------------------------------------------------------
const CARD_KEYS = ["ttft_ms", "tpot_ms", "throughput_tokens_per_s", "throughput_tokens_per_s_per_device",
  "tokens_per_s_per_user", "memory_gb_per_device", "usable_memory_gb_per_device", "weights_gb_per_device",
  "kv_cache_gb_per_device", "activation_gb_per_device", "cost_usd_per_million_tokens",
  "throughput_tokens_per_s_per_usd_hour", "num_devices", "max_batch_size", "ttft_floor_ms", "tpot_floor_ms",
  "throughput_ceiling_tokens_per_s", "ttft_p10_ms", "ttft_p90_ms", "tpot_p10_ms", "tpot_p90_ms",
  "throughput_p10_tokens_per_s", "throughput_p90_tokens_per_s"];

function badge(el, value, yes, no) {
  el.textContent = value === null ? "" : value ? yes : no;
  el.className = "badge " + (value === null ? "" : value ? "yes" : "no");
  el.dataset.value = value === null ? "" : String(value);
}

function renderSystem(s, capacity, sla) {
  for (const k of CARD_KEYS) show(k, s ? s[k] : null);
  $("band_basis").textContent = (s && s.band_basis) || "";
  show("sla_max_batch_size", capacity ? capacity.batch_limit : null);
  badge($("fits"), s ? s.fits : null, "fits", "does not fit");
  badge($("sla"), s ? meetsSla(s, sla) : null, "meets SLA", "misses SLA");
  $("reason").hidden = !(s && s.reason);
  $("reason").textContent = (s && s.reason) || "";
}

function renderLayers(s, layers) {
  const rows = s ? KINDS.map((kind, i) => {
    const l = layers[i], tr = document.createElement("tr");
    tr.dataset.layer = kind;
    const cells = [[kind], [l.count, "count"], [s.layers[kind].prefill_ms, "prefill_ms"],
      [s.layers[kind].decode_ms, "decode_ms"], [l.latency_ms, "latency_ms"], [l.flops / 1e9, "gflop"],
      [l.bytes / 1e6, "mb"], [l.comm_ms, "comm_ms"], [l.bound]];
    for (const [v, key] of cells) {
      const td = document.createElement("td");
      if (key) { td.textContent = fmt(v); td.dataset.key = key; td.dataset.value = String(v); }
      else td.textContent = v;
      tr.append(td);
    }
    return tr;
  }) : [];
  $("layer-table").tBodies[0].replaceChildren(...rows);
}

function renderChart() {
  const el = $("chart");
  if (!state.curve) { el.replaceChildren(); el._spec = null; return; }
  const sel = $("chart_y"), y = sel.value, pts = state.curve.points;
  const point = p => ({ x: p.throughput_tokens_per_s_per_device, y: p[y], hollow: !p.fits,
    big: p.batch_size === state.batch, label: `b=${p.batch_size}`, data: { "batch-size": p.batch_size },
    title: `batch ${p.batch_size}: ${fmt(p[y])} ms, ${fmt(p.throughput_tokens_per_s_per_device)} tokens/s per GPU` +
      (p.fits ? "" : " (does not fit)") });
  const fit = pts.filter(p => p.fits), firstBad = pts.findIndex(p => !p.fits);
  const rest = firstBad < 0 ? [] : pts.slice(firstBad);
  const bridge = firstBad > 0 ? [{ ...point(pts[firstBad - 1]), noDot: true }] : [];
  window.drawChart(el, { xLabel: "tokens/s per GPU", yLabel: sel.options[sel.selectedIndex].text, xLog: true,
    series: [{ name: "fits", color: "#2f6fde", line: "solid", points: fit.map(point) },
      { name: "does not fit", color: "#b4bccb", line: "dashed", points: [...bridge, ...rest.map(point)] }] });
}

function showError(box, err) {
  if (box === $("error")) document.querySelectorAll("#controls .invalid").forEach(el => el.classList.remove("invalid"));
  box.hidden = !err;
  box.textContent = err ? err.message : "";
  for (const d of (err && err.detail) || []) {
    const input = $(FIELD_INPUTS[d.field] || "");
    if (input) input.classList.add("invalid");
  }
}

// ---- update cycle -------------------------------------------------------------------------------
async function update() {
  const gen = ++state.generation;
  document.body.dataset.state = "loading";
  const cfg = readConfig(), sys = systemBody(cfg), phase = $("layer_phase").value, sla = slaOf(cfg);
  const curveBody = { ...sys };
  delete curveBody.batch_size;
  const results = await Promise.allSettled([
    api("/config/system-metrics", sys), api("/config/batch-curve", curveBody),
    api("/capacity", { ...gridOf(sys), sla }),
    ...KINDS.map(k => api("/config/layer-metrics", layerBody(k, sys, phase)))]);
  if (gen !== state.generation) return;  // a newer request is on its way
  const failed = results.find(r => r.status === "rejected");
  if (failed) {  // no stale numbers: everything of the previous configuration goes
    showError($("error"), failed.reason);
    renderSystem(null, null, sla);
    renderLayers(null, []);
    state.curve = null;
    renderChart();
    delete $("results").dataset.request;
    document.body.dataset.state = "error";
    return;
  }
  const [system, curve, capacity, ...layers] = results.map(r => r.value);
  showError($("error"), null);
  renderSystem(system, capacity.plans[0], sla);
  renderLayers(system, layers);
  state.curve = curve;
  state.batch = sys.batch_size;
  renderChart();
  $("results").dataset.request = JSON.stringify(sys);
  $("results").dataset.layerPhase = phase;
  document.body.dataset.state = "ready";
}

function changed(delayMs) {
  writeUrl();
  clearTimeout(state.timer);
  state.timer = setTimeout(update, delayMs);
  for (const hook of state.hooks) hook.changed && hook.changed();
}

async function init() {
  const [models, hw, schema] = await Promise.all([api("/models"), api("/hardware"), api("/openapi.json")]);
  for (const m of models.models) state.models[m.model_id] = m;
  for (const h of hw.summaries) state.hardware[h.hardware_id] = h;
  state.servings = schema.components.schemas.SystemMetricsRequest.properties.serving.enum || ["pytorch"];
  options($("model_id"), Object.keys(state.models), id => `${state.models[id].name} (${id})`);
  options($("hardware_config"), hw.configs, id => state.hardware[id].name);
  $("draft_models").replaceChildren(...Object.keys(state.models).map(id => new Option(state.models[id].name, id)));
  const { params, cfg } = readUrl();
  const fromLink = Object.keys(cfg).length > 0;
  applyConfig(fromLink ? cfg : { ...DEFAULTS, dtype: "bf16" });
  if (!fromLink) clampToContext();
  for (const id of VIEW) if (params.has(id)) $(id).value = params.get(id);
  describeSelection();
  for (const hook of state.hooks) hook.init && await hook.init(params);
  for (const el of document.querySelectorAll("#controls select")) {
    el.addEventListener("change", () => {
      refreshPlanOptions();
      if (el.id === "model_id") clampToContext();
      describeSelection();
      changed(0);
    });
  }
  for (const el of document.querySelectorAll("#controls input")) el.addEventListener("input", () => changed(250));
  $("layer_phase").addEventListener("change", () => changed(0));
  $("chart_y").addEventListener("change", () => { writeUrl(); renderChart(); });
  $("copy-link").addEventListener("click", async () => {
    writeUrl();
    try { await navigator.clipboard.writeText(location.href); $("copy-link").textContent = "Link copied"; }
    catch { prompt("Copy this link", location.href); }
  });
  writeUrl();
  await update();
}

window.addEventListener("load", () => init().catch(err => {
  showError($("error"), err);
  document.body.dataset.state = "error";
}));
