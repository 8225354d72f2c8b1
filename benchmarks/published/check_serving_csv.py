"""Check benchmarks/published/serving_results.csv (published end-to-end serving results).

Usage: python benchmarks/published/check_serving_csv.py [path]

Checks, per row:
  * every column is present (names exactly as documented in README.md);
  * numeric columns parse as numbers (request_rate may be ``inf``);
  * model, hardware, serving, metric, spec_method and dtype come from the allowed lists;
  * exactly one load definition is set (batch, concurrency or request_rate), or the notes say
    why none is known (they must contain the word "unknown" or "not stated");
  * kind is ``published``, value > 0, source and notes are not empty.
Exits 1 and prints every problem when a check fails.
"""
from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

COLUMNS = [
    "kind", "model", "hardware", "num_devices", "serving", "serving_version", "dtype", "kv_dtype",
    "tp", "pp", "dp", "ep", "dp_attention", "batch", "concurrency", "request_rate", "num_requests",
    "input_seq", "output_seq", "dataset", "spec_method", "spec_num_tokens", "spec_acceptance_length",
    "disagg", "prefix_cache_hit_rate", "metric", "value", "source", "notes", "check",
]
INT_COLS = ["num_devices", "tp", "pp", "dp", "ep", "batch", "concurrency", "num_requests", "spec_num_tokens"]
FLOAT_COLS = ["input_seq", "output_seq", "spec_acceptance_length", "prefix_cache_hit_rate", "value", "request_rate"]
MODELS = {
    # existing ids in conf/model/
    "llama2_70b", "llama_3.1_405b", "llama_3.1_8b", "llama_3.2_1b", "llama_3.3_70b", "mixtral_8x7b",
    "qwen2.5_32b", "tinyllama_1.1b",
    # ids being added (issue 11)
    "deepseek_v3", "deepseek_r1", "kimi_k2", "qwen3_235b_a22b", "qwen3_30b_a3b", "qwen3_32b",
    "gpt_oss_120b", "gpt_oss_20b", "llama_4_scout", "llama_4_maverick", "gemma_3_27b", "mixtral_8x22b",
}
HARDWARE = {
    "nvidia_h100_80gb", "nvidia_h200_141gb", "nvidia_b200_180gb", "nvidia_gb200_single",
    "nvidia_nvl72_rack", "nvidia_a100_80gb", "amd_mi300x", "amd_mi300x_x2", "nvidia_b200_180gb_x4",
    "nvidia_h100_80gb_x4", "nvidia_h200_141gb_x2",
    # being added (issue 11)
    "nvidia_b300", "nvidia_gb300_nvl72", "nvidia_h20", "nvidia_l40s", "nvidia_rtx_pro_6000",
    "amd_mi325x", "amd_mi355x", "intel_gaudi3",
}
SERVING = {"vllm", "sglang", "trtllm", "other"}
SPEC = {"", "none", "eagle", "eagle3", "mtp", "ngram", "draft"}
DTYPES = {"bf16", "fp16", "fp8", "fp4", "mxfp4", "int4", "w4a16", "int8", "w8a8"}
KV_DTYPES = DTYPES | {""}
BASE_METRICS = {
    "throughput_tokens_per_s", "throughput_tokens_per_s_per_device", "request_throughput_per_s",
    "tpot_ms", "ttft_ms", "itl_ms", "e2e_latency_ms",
}
LAT = ["tpot", "ttft", "itl", "e2e_latency"]
METRICS = BASE_METRICS | {f"{m}_{p}_ms" for m in LAT for p in ("p50", "p90", "p95", "p99")}


def _is_num(s: str, allow_inf: bool = False) -> bool:
    if allow_inf and s.strip().lower() == "inf":
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False


def check(path: Path) -> list[str]:
    df = pl.read_csv(path, infer_schema=False)  # every column as text
    problems: list[str] = []
    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in COLUMNS]
    if missing or extra:
        return [f"columns: missing {missing}, unexpected {extra}"]
    df = df.fill_null("")
    for i, r in enumerate(df.iter_rows(named=True), start=2):  # line 1 is the header
        where = f"line {i} ({r['model']}, {r['metric']})"
        if r["kind"] != "published":
            problems.append(f"{where}: kind must be 'published'")
        for col, allowed in (("model", MODELS), ("hardware", HARDWARE), ("serving", SERVING),
                             ("metric", METRICS), ("spec_method", SPEC), ("dtype", DTYPES),
                             ("kv_dtype", KV_DTYPES)):
            if r[col] not in allowed:
                problems.append(f"{where}: {col}={r[col]!r} not in the allowed list")
        for col in INT_COLS:
            v = r[col]
            if v and not (v.isdigit() and int(v) >= 0):
                problems.append(f"{where}: {col}={v!r} is not a non-negative integer")
        for col in FLOAT_COLS:
            v = r[col]
            if v and not _is_num(v, allow_inf=(col == "request_rate")):
                problems.append(f"{where}: {col}={v!r} is not a number")
        if r["dp_attention"] not in ("", "true", "false"):
            problems.append(f"{where}: dp_attention must be true/false/empty")
        if not r["value"] or not _is_num(r["value"]) or float(r["value"]) <= 0:
            problems.append(f"{where}: value must be a positive number")
        if not r["source"].strip() or not r["notes"].strip():
            problems.append(f"{where}: source and notes must not be empty")
        loads = [c for c in ("batch", "concurrency", "request_rate") if r[c]]
        if len(loads) > 1:
            problems.append(f"{where}: more than one load definition set: {loads}")
        if not loads:
            n = r["notes"].lower()
            if "unknown" not in n and "not stated" not in n:
                problems.append(f"{where}: no load definition and the notes do not say why (unknown/not stated)")
        if r["spec_method"] not in ("", "none") and not r["spec_num_tokens"] and not r["spec_acceptance_length"]:
            problems.append(f"{where}: speculative row without spec_num_tokens or spec_acceptance_length")
        if r["prefix_cache_hit_rate"] and not 0 <= float(r["prefix_cache_hit_rate"]) <= 1:
            problems.append(f"{where}: prefix_cache_hit_rate must be a fraction in [0, 1]")
        if r["num_devices"] and r["tp"] and r["pp"]:
            tp, pp = int(r["tp"]), int(r["pp"])
            dp = int(r["dp"]) if r["dp"] else 1
            if r["dp_attention"] != "true" and not r["disagg"] and tp * pp * dp > int(r["num_devices"]):
                problems.append(f"{where}: tp*pp*dp = {tp * pp * dp} exceeds num_devices {r['num_devices']}")
    return problems


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("serving_results.csv")
    problems = check(path)
    df = pl.read_csv(path, infer_schema=False)
    for p in problems:
        print(p)
    print(f"{path.name}: {df.height} rows, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
