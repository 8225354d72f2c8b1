// Disaggregated panel: POST /disagg/estimate with the form's model, hardware, engine, dtype, input and output
// tokens, and this panel's prefill and decode plans, instances (or ratio=auto) and load; shows the row.
"use strict";

const DISAGG_ROWS = [["devices", "num_devices"], ["prefill instances", "disagg.prefill.instances"],
  ["decode instances", "disagg.decode.instances"], ["TTFT (ms)", "ttft_ms"], ["TTFT p99 (ms)", "ttft_p99_ms"],
  ["KV transfer (ms)", "kv_transfer_ms"], ["KV link", "kv_link"], ["TPOT (ms)", "tpot_ms"],
  ["tokens/s per device", "throughput_tokens_per_s_per_device"], ["tokens/s per user", "tokens_per_s_per_user"],
  ["requests/s", "request_throughput_per_s"], ["decode batch per instance", "running_batch"],
  ["$ per hour", "usd_per_hour"], ["fits", "fits"], ["valid", "valid"], ["reason", "reason"],
  ["ratio", "disagg.ratio_note"]];
const dis = { generation: 0 };

function disaggBody() {
  const c = readConfig(), auto = $("dis_auto").checked, load = $("dis_load").value;
  const side = (tp, n) => ({ tensor_parallel: number($(tp).value), dtype: c.dtype || "auto", serving: c.serving,
    ...(auto ? {} : { instances: number($(n).value) }) });
  return { model_id: c.model_id, hardware_config: c.hardware_config, input_seq: number(c.input_seq),
    output_seq: number(c.output_seq), [load]: number($("dis_load_value").value),
    prefill: side("dis_prefill_tp", "dis_prefill_n"), decode: side("dis_decode_tp", "dis_decode_n"),
    ...(auto ? { ratio: "auto" } : {}),
    ...(auto && $("dis_max_devices").value ? { max_devices: number($("dis_max_devices").value) } : {}) };
}

function renderDisagg(row) {
  $("dis-table").tBodies[0].replaceChildren(...(row ? DISAGG_ROWS : []).map(([label, k]) => {
    const tr = document.createElement("tr");
    tr.append(cell("th", label), cell("td", row[k] === null ? "" : fmt(row[k]), { key: k, value: String(row[k]) }));
    return tr;
  }));
}

async function runDisagg() {
  const gen = ++dis.generation;
  $("disagg").dataset.state = "loading";
  try {
    const row = await api("/disagg/estimate", disaggBody());
    if (gen !== dis.generation) return;
    showError($("dis-error"), null);
    renderDisagg(row);
    $("disagg").dataset.state = "ready";
  } catch (err) {
    if (gen !== dis.generation) return;
    showError($("dis-error"), err);
    renderDisagg(null);
    $("disagg").dataset.state = "error";
  }
}

state.hooks.push({
  init() { $("dis_run").addEventListener("click", runDisagg); },
  write() {},
  changed() {},
});
