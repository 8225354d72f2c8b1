// Mantile web page: a form over the stateless HTTP API. Every number shown comes from the API
// (system-metrics, layer-metrics, batch-curve); this file only builds request bodies and renders.
"use strict";

const $ = id => document.getElementById(id);
const KINDS = ["attention", "feedforward", "norm", "embedding"];
const DTYPE_ORDER = ["bf16", "fp16", "fp8", "int8", "fp4", "fp32", "tf32"];
const DEFAULTS = { model_id: "llama_3.3_70b", hardware_config: "nvidia_nvl72_rack", attention_tp: 8 };
// Body field (as named in a 422's detail) -> the input that sets it.
const FIELD_INPUTS = {
  model_id: "model_id", hardware_config: "hardware_config", batch_size: "batch_size", dtype: "dtype",
  input_seq: "input_seq", seq_length: "input_seq", kv_length: "input_seq", output_seq: "output_seq",
  tensor_parallel: "attention_tp", context_parallel: "attention_cp", sequence_parallel: "feedforward_sp",
  expert_parallel: "feedforward_ep", "layers.attention.tensor_parallel": "attention_tp",
  "layers.attention.context_parallel": "attention_cp", "layers.feedforward.tensor_parallel": "attention_tp",
  "layers.feedforward.sequence_parallel": "feedforward_sp", "layers.feedforward.expert_parallel": "feedforward_ep",
  "layers.norm.tensor_parallel": "norm_tp", "layers.embedding.tensor_parallel": "embedding_tp",
};
const state = { models: {}, hardware: {}, generation: 0, curve: null, batch: null, timer: null };

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
const int = id => Number($(id).value);

function number(id) {  // what the user typed: an integer, or the raw text for the API to reject
  const text = $(id).value.trim();
  if (text === "") return null;
  const v = Number(text);
  return Number.isFinite(v) ? v : text;
}

// ---- the form -----------------------------------------------------------------------------------
function describeSelection() {
  const m = state.models[$("model_id").value], h = state.hardware[$("hardware_config").value];
  $("model-info").textContent = `${m.num_hidden_layers} layers · ${(m.total_params / 1e9).toFixed(1)} B params` +
    ` · ${m.num_attention_heads} heads / ${m.num_key_value_heads} KV · context ${m.max_position_embeddings.toLocaleString("en-US")}` +
    (m.is_moe ? ` · ${m.num_local_experts} experts, top-${m.num_experts_per_tok}` : "");
  $("hardware-info").textContent = `${h.num_devices} × ${h.device_name} · ${h.memory_gib_per_device} GiB · ` +
    `${h.hbm_bandwidth_tb_per_s} TB/s · ${(h.peak_bf16_tflops || 0).toLocaleString("en-US")} TFLOP/s bf16`;
  $("expert-row").hidden = !m.is_moe;
}

function refreshPlanOptions() {
  const m = state.models[$("model_id").value], h = state.hardware[$("hardware_config").value];
  options($("dtype"), DTYPE_ORDER.filter(d => d in h.peak_tflops));
  options($("attention_tp"), powersOf2(h.num_devices));
  const tp = int("attention_tp");
  options($("attention_cp"), powersOf2(Math.floor(h.num_devices / tp)));
  const cp = int("attention_cp");
  const followsTp = $("embedding_tp").dataset.tp === undefined || $("embedding_tp").value === $("embedding_tp").dataset.tp;
  options($("embedding_tp"), powersOf2(tp * cp));
  if (followsTp) $("embedding_tp").value = String(tp);
  $("embedding_tp").dataset.tp = String(tp);
  options($("feedforward_sp"), [...new Set([1, tp])], v => (v === 1 ? "1 (off)" : `${v} (= tp)`));
  options($("norm_tp"), [...new Set([1, tp])], v => (v === 1 ? "1 (replicated)" : `${v} (sequence parallel)`));
  options($("feedforward_ep"), m.is_moe ? powersOf2(Math.min(tp, m.num_local_experts)) : [1]);
  $("feedforward_tp").textContent = String(tp / int("feedforward_ep"));
}

function systemBody() {
  const dtype = $("dtype").value, tp = int("attention_tp"), ep = int("feedforward_ep");
  const feedforward = { tensor_parallel: tp / ep, sequence_parallel: int("feedforward_sp"), dtype };
  if (state.models[$("model_id").value].is_moe) feedforward.expert_parallel = ep;
  return {
    model_id: $("model_id").value, hardware_config: $("hardware_config").value,
    batch_size: number("batch_size"), input_seq: number("input_seq"), output_seq: number("output_seq"), dtype,
    layers: {
      attention: { tensor_parallel: tp, context_parallel: int("attention_cp"), dtype },
      feedforward,
      norm: { tensor_parallel: int("norm_tp"), dtype },
      embedding: { tensor_parallel: int("embedding_tp"), dtype },
    },
  };
}

// One instance of each layer type, split as the system body splits it. Sequence parallel: the
// feedforward's or the norm's choice (both mean "over the tensor-parallel group").
function layerBody(kind, sys, phase) {
  const L = sys.layers, sp = Math.max(L.feedforward.sequence_parallel, L.norm.tensor_parallel);
  return {
    model_id: sys.model_id, hardware_config: sys.hardware_config, layer_type: kind, phase,
    batch_size: sys.batch_size, seq_length: sys.input_seq, dtype: sys.dtype,
    tensor_parallel: kind === "embedding" ? L.embedding.tensor_parallel : L.attention.tensor_parallel,
    context_parallel: L.attention.context_parallel,
    sequence_parallel: kind === "embedding" ? 1 : sp,
    expert_parallel: kind === "feedforward" ? (L.feedforward.expert_parallel || 1) : 1,
  };
}

// ---- rendering ----------------------------------------------------------------------------------
const CARD_KEYS = ["ttft_ms", "tpot_ms", "throughput_tokens_per_s", "throughput_tokens_per_s_per_device",
  "tokens_per_s_per_user", "memory_gb_per_device", "usable_memory_gb_per_device", "weights_gb_per_device",
  "kv_cache_gb_per_device", "activation_gb_per_device", "num_devices", "max_batch_size"];

function renderSystem(s) {
  for (const k of CARD_KEYS) show(k, s[k]);
  const fits = $("fits");
  fits.textContent = s.fits ? "fits" : "does not fit";
  fits.className = "badge " + (s.fits ? "yes" : "no");
  fits.dataset.value = String(s.fits);
  $("reason").hidden = !s.reason;
  $("reason").textContent = s.reason || "";
}

function renderLayers(s, layers) {
  const rows = KINDS.map((kind, i) => {
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
  });
  $("layer-table").tBodies[0].replaceChildren(...rows);
}

function renderChart() {
  if (!state.curve) return;
  const sel = $("chart_y");
  window.drawChart($("chart"), state.curve.points, sel.value, sel.options[sel.selectedIndex].text, state.batch);
}

function showError(err) {
  document.querySelectorAll(".invalid").forEach(el => el.classList.remove("invalid"));
  const box = $("error");
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
  const sys = systemBody(), phase = $("layer_phase").value;
  const curveBody = { ...sys };
  delete curveBody.batch_size;
  const results = await Promise.allSettled([
    api("/config/system-metrics", sys), api("/config/batch-curve", curveBody),
    ...KINDS.map(k => api("/config/layer-metrics", layerBody(k, sys, phase)))]);
  if (gen !== state.generation) return;  // a newer request is on its way
  const failed = results.find(r => r.status === "rejected");
  if (failed) {
    showError(failed.reason);
    document.body.dataset.state = "error";
    return;
  }
  const [system, curve, ...layers] = results.map(r => r.value);
  showError(null);
  renderSystem(system);
  renderLayers(system, layers);
  state.curve = curve;
  state.batch = sys.batch_size;
  renderChart();
  $("results").dataset.request = JSON.stringify(sys);
  $("results").dataset.layerPhase = phase;
  document.body.dataset.state = "ready";
}

function schedule(delayMs) {
  clearTimeout(state.timer);
  state.timer = setTimeout(update, delayMs);
}

async function init() {
  const [models, hardware] = await Promise.all([api("/models"), api("/hardware")]);
  for (const m of models.models) state.models[m.model_id] = m;
  for (const h of hardware.summaries) state.hardware[h.hardware_id] = h;
  options($("model_id"), Object.keys(state.models), id => `${state.models[id].name} (${id})`);
  options($("hardware_config"), hardware.configs, id => state.hardware[id].name);
  if (DEFAULTS.model_id in state.models) $("model_id").value = DEFAULTS.model_id;
  if (DEFAULTS.hardware_config in state.hardware) $("hardware_config").value = DEFAULTS.hardware_config;
  refreshPlanOptions();
  if ([...$("attention_tp").options].some(o => o.value === String(DEFAULTS.attention_tp))) {
    $("attention_tp").value = String(DEFAULTS.attention_tp);
  }
  refreshPlanOptions();
  $("dtype").value = "bf16";
  describeSelection();
  for (const el of document.querySelectorAll("#controls select")) {
    el.addEventListener("change", () => { refreshPlanOptions(); describeSelection(); schedule(0); });
  }
  for (const el of document.querySelectorAll("#controls input")) el.addEventListener("input", () => schedule(250));
  $("layer_phase").addEventListener("change", () => schedule(0));
  $("chart_y").addEventListener("change", renderChart);
  await update();
}

init().catch(err => { showError(err); document.body.dataset.state = "error"; });
