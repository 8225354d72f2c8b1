// Side-by-side comparison: "Add to comparison" keeps the edited configuration as a column (in the URL
// as `cmp`); each column's numbers come from POST /config/system-metrics. Rows whose settings differ
// are highlighted, the best value of each metric is marked, and the table exports as CSV.
"use strict";

const compare = { pinned: [] };  // [{cfg, row, error}]

const SETTING_ROWS = [
  ["model", c => c.model_id], ["hardware", c => c.hardware_config],
  ["serving", c => [c.serving, c.batching, c.comm_overlap && `overlap ${c.comm_overlap}`,
    c.max_prefill_tokens && `chunk ${c.max_prefill_tokens}`,
    c.max_num_batched_tokens && `step budget ${c.max_num_batched_tokens}`, c.memory_reserve_fraction &&
    `reserve ${c.memory_reserve_fraction}`].filter(Boolean).join(" · ")],
  ["batch size", c => c.batch_size], ["input / output tokens", c => `${c.input_seq} / ${c.output_seq}`],
  ["dtype / KV", c => `${c.dtype} / ${c.kv_dtype || c.dtype}`],
  ["tp · cp · pp · dp", c => [c.attention_tp, c.attention_cp, c.pipeline_parallel, c.data_parallel].join(" · ")],
  ["sp · ep · embedding tp", c => [c.feedforward_sp, c.feedforward_ep, c.embedding_tp].join(" · ")],
  ["SLA", c => Object.entries(slaOf(c)).map(([k, v]) => `${k} ≤ ${v}`).join(", ") || "none"],
];
// [label, key, better: "low" | "high" | null]
const METRIC_ROWS = [["TTFT (ms)", "ttft_ms", "low"], ["TPOT (ms)", "tpot_ms", "low"],
  ["tokens/s", "throughput_tokens_per_s", "high"], ["tokens/s per GPU", "throughput_tokens_per_s_per_device", "high"],
  ["tokens/s per user", "tokens_per_s_per_user", "high"], ["memory per GPU (GB)", "memory_gb_per_device", "low"],
  ["GPUs", "num_devices", null], ["$ per M tokens", "cost_usd_per_million_tokens", "low"],
  ["fits", "fits", null], ["meets SLA", "meets_sla", null]];

async function evaluate(entry) {
  try {
    entry.row = await api("/config/system-metrics", systemBody(entry.cfg));
    entry.row.meets_sla = meetsSla(entry.row, slaOf(entry.cfg));
    entry.error = null;
  } catch (err) {
    entry.row = null;
    entry.error = err.message;
  }
}

function cell(tag, textValue, attrs = {}) {
  const el = document.createElement(tag);
  el.textContent = textValue;
  for (const [k, v] of Object.entries(attrs)) el.dataset[k] = v;
  return el;
}

function renderCompare() {
  const table = $("compare-table"), cols = compare.pinned;
  $("compare").dataset.state = cols.length ? "ready" : "empty";
  $("compare-empty").hidden = cols.length > 0;
  table.hidden = !cols.length;
  const head = document.createElement("tr");
  head.append(cell("th", ""));
  cols.forEach((entry, i) => {
    const th = cell("th", `#${i + 1} `, { col: i });
    const load = cell("button", "edit", { load: i });
    const remove = cell("button", "×", { remove: i });
    load.type = remove.type = "button";
    load.title = "put this configuration back in the form";
    remove.title = "remove from the comparison";
    th.append(load, remove);
    head.append(th);
  });
  table.tHead.replaceChildren(head);
  const rows = SETTING_ROWS.map(([label, get]) => {
    const values = cols.map(e => String(get(e.cfg)));
    const tr = document.createElement("tr");
    tr.className = "setting" + (new Set(values).size > 1 ? " diff" : "");
    tr.append(cell("th", label), ...values.map((v, i) => cell("td", v, { col: i })));
    return tr;
  });
  for (const [label, key, better] of METRIC_ROWS) {
    const values = cols.map(e => (e.row ? e.row[key] : null));
    const nums = values.filter(v => typeof v === "number");
    const best = better === "low" ? Math.min(...nums) : better === "high" ? Math.max(...nums) : null;
    const tr = document.createElement("tr");
    tr.append(cell("th", label));
    values.forEach((v, i) => {
      const td = cell("td", cols[i].error ? "error" : typeof v === "boolean" ? (v ? "yes" : "no") : fmt(v),
        { col: i, key, value: v === null || v === undefined ? "" : String(v) });
      if (cols.length > 1 && nums.length > 1 && v === best) td.classList.add("best");
      if (cols[i].error) td.title = cols[i].error;
      tr.append(td);
    });
    rows.push(tr);
  }
  table.tBodies[0].replaceChildren(...rows);
}

async function setPinned(cfgs) {
  compare.pinned = cfgs.map(cfg => ({ cfg, row: null, error: null }));
  $("compare").dataset.state = "loading";
  await Promise.all(compare.pinned.map(evaluate));
  renderCompare();
}

function csvText(rows) {
  const quote = v => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return rows.map(r => r.map(quote).join(",")).join("\n") + "\n";
}

function exportCompare() {
  const entries = compare.pinned.length ? compare.pinned : [];
  const keys = METRIC_ROWS.map(r => r[1]);
  const rows = [[...CONTROLS, ...keys], ...entries.map(e => [...CONTROLS.map(k => e.cfg[k]),
    ...keys.map(k => (e.row ? e.row[k] : null))])];
  download(new Blob([csvText(rows)], { type: "text/csv" }), "mantile-comparison.csv");
}

state.hooks.push({
  async init(params) {
    $("pin").addEventListener("click", async () => {
      await setPinned([...compare.pinned.map(e => e.cfg), readConfig()]);
      writeUrl();
    });
    $("compare-table").addEventListener("click", async ev => {
      const b = ev.target.closest("button");
      if (!b) return;
      if (b.dataset.remove !== undefined) {
        compare.pinned.splice(Number(b.dataset.remove), 1);
        renderCompare();
        writeUrl();
      } else if (b.dataset.load !== undefined) {
        applyConfig(compare.pinned[Number(b.dataset.load)].cfg);
        describeSelection();
        changed(0);
      }
    });
    $("export-compare").addEventListener("click", exportCompare);
    const cfgs = params.getAll("cmp").map(s => Object.fromEntries(new URLSearchParams(s)));
    await setPinned(cfgs.map(c => ({ ...readConfig(), ...c })));
  },
  write(params) {
    for (const e of compare.pinned) params.append("cmp", new URLSearchParams(e.cfg).toString());
  },
});
