// Recommend panel: POST /recommend with the form's model, input and output tokens, the hardware checked in
// the Pareto panel and this panel's rate, targets and engines; shows one ranking and the launch commands.
"use strict";

const REC_COLUMNS = [["mode", "mode"], ["hardware", "hardware_id"], ["engine", "serving"], ["dtype", "dtype"],
  ["tp", "tp"], ["replicas", "replicas"], ["prefill", "prefill_instances"], ["decode", "decode_instances"],
  ["decode tp", "decode_tp"], ["GPUs", "num_devices"], ["TTFT p99 (ms)", "ttft_p99_ms"],
  ["TPOT p99 (ms)", "tpot_p99_ms"], ["tokens/s per user", "tokens_per_s_per_user"], ["$ per hour", "usd_per_hour"],
  ["J per token", "energy_j_per_token"]];
const REC_TITLES = { by_gpus: "fewest GPUs", by_usd_per_hour: "lowest dollars per hour",
  by_energy: "lowest energy per token", pareto: "fewest GPUs" };
const rec = { result: null, generation: 0 };

function recommendBody() {
  const c = readConfig();
  return { model_id: c.model_id, input_seq: number(c.input_seq), output_seq: number(c.output_seq),
    request_rate: number($("rec_rate").value),
    sla: { ttft_ms: number($("rec_ttft_ms").value), tpot_ms: number($("rec_tpot_ms").value),
      percentile: $("rec_percentile").value },
    hardware_config: checkedHardware(),
    serving: [...document.querySelectorAll("#rec_engines input[value]:checked")].map(el => el.value),
    disaggregated: $("rec_disagg").checked };
}

function renderRecommend() {
  const table = $("rec-table"), result = rec.result, key = $("rec_rank").value;
  if (!result) { table.tHead.replaceChildren(); table.tBodies[0].replaceChildren(); $("rec-commands").textContent = ""; return; }
  const head = document.createElement("tr");
  head.append(...REC_COLUMNS.map(([label]) => cell("th", label)));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...result[key].map(r => {
    const tr = document.createElement("tr");
    tr.append(...REC_COLUMNS.map(([, k]) => cell("td", r[k] === null ? "" : fmt(r[k]), { key: k, value: String(r[k]) })));
    return tr;
  }));
  const commands = result.commands[REC_TITLES[key]] || [];
  $("rec-commands").textContent = commands.join("\n");
  $("rec-summary").textContent = `${result.deployments} deployments meet the targets; ` +
    `${result.searched.groups_verified} of ${result.searched.groups} hardware x engine groups verified ` +
    `in ${result.seconds.toFixed(1)} s`;
}

async function runRecommend() {
  const gen = ++rec.generation;
  $("recommend").dataset.state = "loading";
  $("rec-summary").textContent = "searching...";
  try {
    const result = await api("/recommend", recommendBody());
    if (gen !== rec.generation) return;
    rec.result = result;
    showError($("rec-error"), null);
    $("recommend").dataset.state = "ready";
  } catch (err) {
    if (gen !== rec.generation) return;
    rec.result = null;
    showError($("rec-error"), err);
    $("rec-summary").textContent = "";
    $("recommend").dataset.state = "error";
  }
  renderRecommend();
}

state.hooks.push({
  init() {
    $("rec_run").addEventListener("click", runRecommend);
    $("rec_rank").addEventListener("change", renderRecommend);
  },
  write() {},
  changed() {},
});
