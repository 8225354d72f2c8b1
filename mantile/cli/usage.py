"""``python -m mantile --help``: usage, examples, the sweep keys, the groups and where the config lives.

Hydra's own help (the full composed config) stays available as ``--hydra-help``; ``--cfg job``
prints the composed config of a command line.
"""

from __future__ import annotations

from mantile.analysis.tables import terminal_width, wrap
from mantile.engine.spec import CLI_SPEC_KEYS, INT_AXES, RUN_AXES, SPEC_AXES, STR_AXES
from mantile.specs import conf_dir, ids

EXAMPLES = (
    ("a grid inside one run (lists are crossed)",
     "python -m mantile model=llama_3.1_8b hardware=nvidia_h100_80gb batch_size='[1,8,64]' tp='[1,2]'"),
    ("one Hydra job per value (-m), merged at the end",
     "python -m mantile model=llama_3.3_70b hardware=nvidia_nvl72_rack -m tp=1,2,4,8"),
    ("the largest batch per plan within an SLA",
     "python -m mantile model=llama_3.3_70b hardware=nvidia_h100_80gb tp='[2,4,8]' study=capacity sla.tpot_ms=50"),
)
KV_DTYPE = "KV-cache dtype (default: dtype)"
SECTIONS = (
    ("sla.ttft_ms, sla.tpot_ms, sla.tokens_per_s_per_user", "service-level objectives (null = none)"),
    ("pareto.latency, pareto.by, pareto.cost", "Pareto objectives and grouping"),
    ("summary.columns='[...]', summary.wide=true", "what the terminal tables show"),
    ("output.format=csv", "also write CSV next to the Parquet files"),
    ("plot=true", "draw the Pareto charts (PNG)"),
    ("disagg.prefill.tp=2, disagg.decode.instances=2, ...", "disaggregated prefill/decode instances (keys: "
     "hardware serving tp pp ep dp_attention dtype kv_dtype batch_size instances); disagg.ratio=auto with "
     "request_rate or disagg.max_devices chooses the instances"),
)
GROUP_HELP = (("model", "conf/model/"), ("hardware", "conf/hardware/"), ("parallelism", "presets of the degrees"),
              ("workload", "presets of batch and lengths"), ("serving", "kernel stack, batching"),
              ("executor", "how to run"), ("study", "what to study beyond the grid"),
              ("experiment", "named presets"), ("efficiency", "+efficiency=<generation>: another profile"))


def _key_lines(width: int) -> list[str]:
    lines = []
    for key, meaning in INT_AXES.items():
        lines.append(f"  {key:<13} {meaning}")
    for key in ("dtype", "kv_dtype"):
        meaning = "weights and math: " + " ".join(STR_AXES[key]) if key == "dtype" else KV_DTYPE
        lines.append(f"  {key:<13} {meaning}")
    for key, (meaning, _) in SPEC_AXES.items():
        name = next((k for k, v in CLI_SPEC_KEYS.items() if v == key), key)
        lines.append(f"  {name:<13} {meaning}")
    lines.append(f"  {'spec.draft_model':<13} draft model id for spec.method=draft (one per run)")
    for key, (meaning, _) in RUN_AXES.items():
        lines.append(f"  {key:<13} {meaning}")
    return [wrap(line, width) for line in lines]


def help_text() -> str:
    width = terminal_width()
    out = ["usage: python -m mantile [-m] [key=value ...]", "",
           "Estimate LLM inference latency, throughput and memory for a model on a hardware system; every",
           "list-valued key is crossed into a grid. Prints a summary, writes results.parquet and pareto.parquet",
           "under outputs/.", "", "examples:"]
    for what, cmd in EXAMPLES:
        out += [f"  # {what}", f"  {cmd}"]
    out += ["", "sweep keys (a value, a list '[1,2,4]', or 'range(1,257,32)'; -m key=a,b sweeps jobs):"]
    out += _key_lines(width)
    out += ["", "groups (group=option):"]
    for group, what in GROUP_HELP:
        out.append(f"  {group:<12} {what}: {', '.join(ids(group))}")
    out += ["", "settings:"]
    out += [f"  {k}: {v}" for k, v in SECTIONS]
    out += ["", f"full config: {conf_dir() / 'config.yaml'} (every key with a comment); the composed config of a",
            "command: python -m mantile <overrides> --cfg job; Hydra's help: --hydra-help.",
            "columns and units: docs/columns.md; re-summarize a run: python -m mantile.cli.summarize DIR"]
    return "\n".join(wrap(line, width) for line in out)
