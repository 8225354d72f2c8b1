"""Check Mantile's disaggregated serving model (``mantile.estimate_disagg``) against the disaggregated
rows of aiconfigurator's end-to-end sample (``systems/silicon_sample.csv``). An independent check:
nothing is fitted to these rows.

    python benchmarks/aiconfigurator/silicon_disagg.py [--aic-root DIR] [--rows] [--out outputs/silicon_disagg.csv]

Each row names its prefill and decode workers (count, tp, pp, attention DP, MoE tp/ep, batch), the
engine, the system, the precision, ISL/OSL and the benchmark's concurrency (closed loop). A row is
expressible when Mantile has the model and the system and its worker plans are a Mantile plan:
attention DP with attention tp 1 (``dp_attention``; devices = attention_dp = moe_tp x moe_ep), or plain
tensor parallelism (attention_dp 1, tp = moe_tp x moe_ep). Mapping of a worker: tp = its devices,
ep = moe_ep, dp_attention = attention_dp > 1; prefill.batch_size = prefill_batch_size x attention_dp (the
sample's batch sizes are per attention-DP rank); the decode batch
follows from the concurrency (C / decode workers, as the sample's decode_batch_size x attention_dp x
workers = C). Each run is num_requests = 10 x C requests [inferred], the volume aiconfigurator's own
benchmark runners send (see silicon_sample.py): its first wave of C prompts queues at the prefill side.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_kernels import REPO, aic_root, package_version  # noqa: E402
from silicon_sample import NVFP4_RELEASES, REQUESTS_PER_CLIENT, repeats  # noqa: E402

import mantile  # noqa: E402

MODELS = {  # model_path -> Mantile conf/model id (same architecture)
    "deepseek-ai/DeepSeek-R1": "deepseek_r1",
    "deepseek-ai/DeepSeek-V3": "deepseek_v3",
    "Qwen/Qwen3-32B": "qwen3_32b",
    "nvidia/Qwen3-32B-NVFP4": "qwen3_32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3_235b_a22b",
    "openai/gpt-oss-120b": "gpt_oss_120b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama_3.1_8b",
    "meta-llama/Llama-3.1-70B": "llama_3.3_70b",
}
SYSTEMS = {
    "h100_sxm": "nvidia_h100_80gb", "h200_sxm": "nvidia_h200_141gb", "b200_sxm": "nvidia_b200_180gb",
    "b300_sxm": "nvidia_b300", "gb200": "nvidia_nvl72_rack", "gb300": "nvidia_gb300_nvl72",
}
DTYPES = {"fp8": "fp8", "fp4": "fp4", "bf16": "bf16"}


def num(v: str) -> int:
    return int(float(v)) if v not in ("", None) else 1


def side(row: dict, p: str) -> dict | None:
    """A worker's Mantile plan, or None when Mantile cannot express it."""
    tp, adp, moe_tp, moe_ep = (num(row[f"{p}_{k}"]) for k in ("tp_size", "attention_dp_size", "moe_tp_size",
                                                               "moe_ep_size"))
    devices = tp * adp
    if adp > 1 and tp > 1:
        return None  # attention tp > 1 inside attention-DP groups: not a Mantile plan
    if moe_tp * moe_ep not in (devices, 1):
        return None
    out = {"tp": devices, "pp": num(row[f"{p}_pp_size"]), "ep": moe_ep, "dp_attention": adp > 1,
           "instances": num(row[f"{p}_num_workers"])}
    if p == "prefill":
        out["batch_size"] = num(row["prefill_batch_size"]) * adp  # the sample's batch is per attention-DP rank
    return out


def predict(row: dict) -> tuple[dict, str] | tuple[None, str]:
    model, hw = MODELS.get(row["model_path"]), SYSTEMS.get(row["system"])
    if model is None or hw is None:
        return None, f"model {row['model_path']} or system {row['system']} not in the catalog"
    if not (row["prefill_num_workers"] and row["decode_num_workers"]):
        return None, "worker counts not given (the deployment is not known)"
    pre, dec = side(row, "prefill"), side(row, "decode")
    if pre is None or dec is None:
        return None, "attention tp > 1 with attention DP"
    conc = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    if conc is None:
        return None, "no concurrency"
    dtype = DTYPES.get(row["precision"], "bf16")
    engine = row["backend"]
    common = {"hardware": hw, "serving": engine, "dtype": dtype}
    if model == "gpt_oss_120b":
        common.pop("dtype")  # the checkpoint's recipe (mxfp4 experts)
    if dtype == "fp4" and model in NVFP4_RELEASES:  # NVIDIA's NVFP4 release (silicon_sample.NVFP4_RELEASES)
        model = NVFP4_RELEASES[model]
    c = int(conc.group(1))
    r = mantile.estimate_disagg(model=model, input_seq=int(row["isl"]), output_seq=int(row["osl"]),
                                concurrency=c, prefill={**common, **pre}, decode={**common, **dec},
                                num_requests=REQUESTS_PER_CLIENT * c)
    return r, ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aic-root")
    ap.add_argument("--rows", action="store_true", help="print every row")
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "silicon_disagg.csv")
    args = ap.parse_args()
    root = aic_root(args.aic_root)
    with open(root / "systems" / "silicon_sample.csv", newline="") as f:
        rows, copies, _ = repeats([r for r in csv.DictReader(f) if r["mode"] == "disagg"])  # each run once
    errs: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    skipped: dict[str, int] = defaultdict(int)
    out = []
    for row in rows:
        r, why = predict(row)
        if r is None:
            skipped[why] += 1
            continue
        if not r["valid"] or not r["fits"] or r["ttft_ms"] is None:
            skipped[f"predicted invalid or not fitting: {r['reason']}"] += 1
            continue
        key = (MODELS[row["model_path"]], f"{row['system']} {row['backend']} {row['precision']}")
        e_ttft = (r["ttft_ms"] - float(row["silicon_ttft_ms"])) / float(row["silicon_ttft_ms"])
        e_tpot = (r["tpot_ms"] - float(row["silicon_tpot_ms"])) / float(row["silicon_tpot_ms"])
        errs[key].append((e_ttft, e_tpot))
        out.append({"id": row["id"], "model": key[0], "group": key[1], "measured_ttft_ms": row["silicon_ttft_ms"],
                    "predicted_ttft_ms": f"{r['ttft_ms']:.4g}", "measured_tpot_ms": row["silicon_tpot_ms"],
                    "predicted_tpot_ms": f"{r['tpot_ms']:.4g}", "kv_transfer_ms": f"{r['kv_transfer_ms']:.3g}"})
        if args.rows:
            print(f"{row['id']:<70} ttft {float(row['silicon_ttft_ms']):8.1f} -> {r['ttft_ms']:8.1f}   "
                  f"tpot {float(row['silicon_tpot_ms']):7.2f} -> {r['tpot_ms']:7.2f}")
    print(f"aiconfigurator-core {package_version(root)}: {len(rows)} disaggregated samples ({copies} copies of "
          "another left out), "
          f"{sum(len(v) for v in errs.values())} expressed and predicted")
    for why, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n:4d}: {why}")
    print(f"\n{'model':<16} {'system engine precision':<28} {'rows':>5} {'TTFT MAPE':>10} {'TPOT MAPE':>10} "
          f"{'TTFT med':>9} {'TPOT med':>9}")
    every: list[tuple[float, float]] = []
    for (model, group), v in sorted(errs.items()):
        every += v
        print(f"{model:<16} {group:<28} {len(v):>5} {_mape(v, 0):>9.1f}% {_mape(v, 1):>9.1f}% "
              f"{_median(v, 0):>+8.1f}% {_median(v, 1):>+8.1f}%")
    if every:
        print(f"{'all':<45} {len(every):>5} {_mape(every, 0):>9.1f}% {_mape(every, 1):>9.1f}% "
              f"{_median(every, 0):>+8.1f}% {_median(every, 1):>+8.1f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        if out:
            w = csv.DictWriter(f, fieldnames=list(out[0]))
            w.writeheader()
            w.writerows(out)


def _mape(v: list[tuple[float, float]], i: int) -> float:
    return 100.0 * sum(abs(x[i]) for x in v) / len(v)


def _median(v: list[tuple[float, float]], i: int) -> float:
    s = sorted(x[i] for x in v)
    m = len(s) // 2
    return 100.0 * (s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2) if s else math.nan


if __name__ == "__main__":
    main()
