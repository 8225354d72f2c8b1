"""Convert aiconfigurator's end-to-end serving sample (``systems/silicon_sample.csv``) into rows of
benchmarks/published/published_results.csv's format, for validation only (never fitted to).

    python benchmarks/aiconfigurator/silicon_sample.py [--aic-root DIR] [--out outputs/silicon_sample.csv]

The converted rows are written to a git-ignored path (outputs/); they are not committed. Each sample
gives two rows (metric ttft_ms and tpot_ms). Models and systems are mapped to Mantile ids
(conf/model, conf/hardware) where Mantile has them; the others keep model/hardware empty and are
listed as unmapped. Extra columns: serving, serving_version, concurrency, request_rate (empty: the
sample is closed-loop at fixed concurrency), num_requests, disagg, mapped.

num_requests = 10 x concurrency [inferred]: the sample does not state its runs' length; aiconfigurator's own
serving benchmark runners send that many (ai-dynamo/aiconfigurator src/aiconfigurator/eval/benchmarks/
genai_perf_runner.py: ``--request-count v * 10``, after ``v * 2`` warmup requests; bench_serving_runner.py:
``--num-prompts`` cc * 10, "~10 requests per active user"), as InferenceMAX does. A finite run's first
wave of prompts queues behind each other's prefill, which a steady state does not (``validate`` reads
num_requests: ``serving.queueing._finite_closed``).

Disaggregated rows put the decode workers' parallelism in tp/pp/dp and the prefill workers' in notes.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_kernels import PACKAGE, REPO, aic_root, package_version  # noqa: E402

MODELS = {  # model_path -> Mantile conf/model id (same architecture)
    "meta-llama/Llama-3.1-8B-Instruct": "llama_3.1_8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama_3.1_8b",
    "meta-llama/Llama-3.1-70B": "llama_3.3_70b",  # Llama 3.3 70B has the Llama 3.1 70B architecture
    "Qwen/Qwen3-32B": "qwen3_32b",
    "nvidia/Qwen3-32B-NVFP4": "qwen3_32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3_235b_a22b",
    "deepseek-ai/DeepSeek-V3": "deepseek_v3",
    "deepseek-ai/DeepSeek-R1": "deepseek_r1",
    "nvidia/DeepSeek-R1-NVFP4": "deepseek_r1",
    "openai/gpt-oss-120b": "gpt_oss_120b",
}
#: checkpoints whose format is per layer type (GPT-OSS: MXFP4 experts beside bf16 attention): the row
#: takes dtype=auto, Mantile's recipe for the checkpoint on that GPU, whatever the sample's label
RECIPE_MODELS = {"gpt_oss_120b"}
#: A DeepSeek-V3/R1 sample in NVFP4 ran one of NVIDIA's NVFP4 releases, the only public NVFP4 checkpoints of
#: these models, which all leave q_a, q_b, kv_a and kv_b in bf16 (conf/model/deepseek_r1_fp4*.yaml). The
#: sample does not name its checkpoint [inferred]: the v2 release (o_proj in NVFP4 too), the one TensorRT-LLM's
#: performance overview measures; the same shapes as DeepSeek-V3.
NVFP4_RELEASES = {"deepseek_v3": "deepseek_r1_fp4_v2", "deepseek_r1": "deepseek_r1_fp4_v2"}
SYSTEMS = {  # aiconfigurator system -> Mantile conf/hardware id
    "h100_sxm": "nvidia_h100_80gb",
    "h200_sxm": "nvidia_h200_141gb",
    "b200_sxm": "nvidia_b200_180gb",
    "gb200": "nvidia_nvl72_rack",  # GB200 NVL72: one NVLink domain of 72 GPUs
    "a100_sxm": "nvidia_a100_80gb",
    "b300_sxm": "nvidia_b300",
    "gb300": "nvidia_gb300_nvl72",  # GB300 NVL72: one NVLink domain of 72 GPUs
}
DTYPES = {"bf16": "bf16", "fp8": "fp8", "fp4": "fp4", "int4": "int4"}
QUANT = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4", "int4_wo": "int4"}
FIELDS = ["kind", "model", "hardware", "dtype", "tp", "pp", "dp", "ep", "dp_attention", "batch", "input_seq",
          "output_seq", "batching",
          "metric", "value", "software", "source", "notes", "serving", "serving_version", "concurrency",
          "request_rate", "num_requests", "disagg", "mapped", "check"]
#: requests per client of a run (module docstring: aiconfigurator's eval runners)
REQUESTS_PER_CLIENT = 10
#: Samples impossible as stated, marked (the ``check`` column: ``validate`` and the bands leave them out, as
#: for the published tables). ``python -m mantile.check`` on their converted rows: TTFT at 2.1-2.7% of its
#: physics floor, TPOT at 54-56%. One TP2 replica (the sample's tp 2; 416-448 clients) would prefill about
#: 830,000 tokens/s of 15,000-token prompts, 3x two GPUs' FP4 peak. The sample's batch_size is 13-14, its
#: concurrency 32x that (in 3,577 of 3,607 aggregated samples the two are equal), so the run likely had
#: many replicas, which the sample does not state. Read as 32 replicas the rest of those 30 samples come out
#: worse, so no replica count is inferred; these three are marked.
IMPOSSIBLE = {
    sample: "impossible as stated: one TP2 replica would prefill 15,000-token prompts at ~3x its FP4 peak "
            "(mantile.check: TTFT at 2% of its floor, TPOT at 55%); concurrency is 32x the sample's batch_size, "
            "replicas not stated"
    for sample in ("nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_b200_sxm_trtllm_agg_15000x500_c416_tp2_0_epnone_2",
                   "nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_gb200_trtllm_agg_15000x500_c448_tp2_0_epnone_2",
                   "nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_gb200_trtllm_agg_15000x500_c448_tp2_0_epnone_3")}
#: Samples whose TPOT beats its physics floor (``python -m mantile.check outputs/silicon_sample.csv --floors-only``
#: at stop 29: the decode step on the ideal machine, datasheet peaks and no overhead, at the stated load; the
#: floor does not depend on how the scheduler groups prompts). GPT-OSS-120B under vLLM on H100 at 512 clients:
#: TPOT 0.39-0.84 of the floor, and below the same deployment's TPOT at 4-64 clients (e.g. TP2 1k/1k: 5.6 ms
#: at 512, 14.8 ms at 64), which a larger running batch cannot give: 512 sequences touch all 128 experts each
#: step, and streaming them alone takes longer than the measured TPOT. The run likely lost most of its
#: requests; the sample does not say.
IMPOSSIBLE.update({
    f"2026_04_06_gpt_oss_120b_h100_sxm_vllm_fp4_agg_{shape}_c512_{plan}_ep1_{n}":
        "impossible as stated: TPOT below its physics floor (mantile.check: 0.39-0.84 of it) and below the same "
        "deployment's TPOT at 4-64 clients; 512 sequences read all 128 experts each step"
    for shape, plan, n in (("1024x8192", "tp8", 1128), ("8192x1024", "tp4", 1130), ("1024x8192", "tp2", 1131),
                           ("1024x1024", "tp2", 1135), ("8192x1024", "tp8", 1136))})
#: DeepSeek-R1 NVFP4 on 64 GB200s (TP64 at 538 clients, 8k/1k): TPOT 10.1 ms, 0.44 of its floor. Qwen3-32B bf16
#: under vLLM on H100 (TP1 batch 24, TP2 batch 48, 4k/1k; the sample states no concurrency, so its batch_size is
#: the load): TPOT 0.92 and 0.86 of the floor of that batch (the weights alone stream in 9.8 ms on TP2).
IMPOSSIBLE.update({
    "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_8192x1024_c538_tp64_ep1_113":
        "impossible as stated: TPOT 0.44 of its physics floor (mantile.check) at TP64 and 538 clients",
    "qwen3_32b_qwen3_32b_h100_sxm_vllm_agg_4000x1000_c_tp2_0_epnone_3":
        "impossible as stated: TPOT 0.86 of the physics floor of its stated batch 48 (no concurrency stated)",
    "qwen3_32b_qwen3_32b_h100_sxm_vllm_agg_4000x1000_c_tp1_0_epnone_4":
        "impossible as stated: TPOT 0.92 of the physics floor of its stated batch 24 (no concurrency stated)",
})


def num(v: str) -> str:
    """'8.0' -> '8'; '' stays ''."""
    if v in ("", None):
        return ""
    f = float(v)
    return str(int(f)) if f == int(f) else str(f)


def convert(row: dict, version: str) -> list[dict]:
    disagg = row["mode"] == "disagg"
    src = row["silicon_data_source"]
    conc = _concurrency(row)
    model = MODELS.get(row["model_path"], "")
    hw = SYSTEMS.get(row["system"], "")
    p = "decode_" if disagg else ""
    notes = [f"model {row['model_path']}, system {row['system']}, gemm {row['gemm_quant_mode'] or '-'}, "
             f"moe {row['moe_quant_mode'] or '-'}, attention_dp {num(row[p + 'attention_dp_size']) or '-'}, "
             f"moe_tp {num(row[p + 'moe_tp_size']) or '-'}, moe_ep {num(row[p + 'moe_ep_size']) or '-'}"]
    if disagg:
        notes.append(f"disaggregated: {num(row['prefill_num_workers'])} prefill workers (tp "
                     f"{num(row['prefill_tp_size'])}, pp {num(row['prefill_pp_size'])}, batch "
                     f"{num(row['prefill_batch_size'])}) and {num(row['decode_num_workers'])} decode workers "
                     f"(tp {num(row['decode_tp_size'])}, batch {num(row['decode_batch_size'])}); tp/pp/dp/batch "
                     "columns are the decode workers'")
    dtype = DTYPES.get(row["precision"]) or QUANT.get(row["gemm_quant_mode"], "bf16")
    if dtype == "fp4" and model in NVFP4_RELEASES:
        model = NVFP4_RELEASES[model]
        notes.append(f"NVFP4 DeepSeek: Mantile model {model}, NVIDIA's NVFP4 release [inferred: not named]")
    if model in RECIPE_MODELS:
        dtype = "auto"
    # parallelism as Mantile states it: a replica of max(tp x attention_dp, moe_tp x moe_ep) devices (vLLM
    # rows give tp 1 with moe_tp 2: two data-parallel attention ranks over tensor-parallel experts); experts
    # over ep, split tp/ep inside; data-parallel attention when the replica is wider than the attention tp
    adp = max(int(float(row[p + "attention_dp_size"] or 1)), 1)  # some samples say 0 for none
    attn_tp = max(int(float(row[p + "tp_size"] or 1)), 1)
    ep = max(int(float(row[p + "moe_ep_size"] or 1)), 1)
    tp = max(attn_tp * adp, max(int(float(row[p + "moe_tp_size"] or 1)), 1) * ep)
    adp = tp // attn_tp
    if not row["precision"]:
        notes.append("precision not given in the sample (no quant mode): bf16 checkpoint assumed [inferred]")
    notes.append(f"measurement: {src}")
    base = {
        "kind": "published", "model": model, "hardware": hw, "dtype": dtype,
        "tp": str(tp), "pp": num(row[p + "pp_size"]), "dp": "", "ep": str(ep) if ep > 1 else "",
        "dp_attention": "true" if adp > 1 else "",
        "batch": num(row[p + "batch_size"]), "input_seq": row["isl"], "output_seq": row["osl"],
        "batching": "continuous", "software": f"{row['backend']} {row['backend_version']}".strip(),
        "source": f"{PACKAGE}=={version} aiconfigurator_core/systems/silicon_sample.csv id={row['id']}",
        "notes": "; ".join(notes), "serving": row["backend"], "serving_version": row["backend_version"],
        "concurrency": conc.group(1) if conc else "", "request_rate": "",
        "num_requests": str(REQUESTS_PER_CLIENT * int(conc.group(1))) if conc and not disagg else "",
        "disagg": str(disagg).lower(),
        "mapped": str(bool(model and hw)).lower(),
        "check": IMPOSSIBLE.get(row["id"], ""),
    }
    out = []
    for metric, col in (("ttft_ms", "silicon_ttft_ms"), ("tpot_ms", "silicon_tpot_ms")):
        if row[col]:
            out.append(dict(base, metric=metric, value=f"{float(row[col]):.6g}"))
    return out


#: columns that describe a sample's deployment and load (with the concurrency its source string states), not its
#: identity, provenance or measurement
MEASURED = ("silicon_ttft_ms", "silicon_tpot_ms")
NOT_CONFIG = ("id", "silicon_data_source", "backend_version", *MEASURED)


def _concurrency(sample: dict) -> re.Match | None:
    """The closed loop's concurrency, stated only in the sample's source string (``silicon_concurrency=N``)."""
    return re.search(r"silicon_concurrency=(\d+)", sample["silicon_data_source"])


def configuration(sample: dict) -> tuple:
    """What a sample ran: every column but its id, provenance, engine version and measurements, and the
    concurrency its source string states."""
    conc = _concurrency(sample)
    return (*(v for k, v in sample.items() if k not in NOT_CONFIG), conc.group(1) if conc else "")


def _value(v: str) -> str:
    """A measurement to 9 significant digits (one run exported twice differs in the 16th)."""
    return f"{float(v):.9g}" if v not in ("", None) else ""


def repeats(samples: list[dict]) -> tuple[list[dict], int, list[tuple[tuple, list[dict]]]]:
    """(the samples with each measurement once, how many copies were dropped, the configurations measured more
    than once with different results). The package's sample holds some runs twice (the same configuration,
    engine version and measured TTFT and TPOT under two ids from two source files); scored twice, such a run
    would weigh double in every MAPE. A configuration measured again (another date or engine version) with
    another result is kept: both are measurements; their spread is the sample's own repeatability."""
    seen, kept, dropped = set(), [], 0
    by_config: dict[tuple, list[dict]] = {}
    for s in samples:
        config = configuration(s)
        key = (config, s["backend_version"], *(_value(s[c]) for c in MEASURED))
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(s)
        by_config.setdefault(config, []).append(s)
    differ = [(k, v) for k, v in by_config.items() if len(v) > 1]
    return kept, dropped, differ


def _spread(group: list[dict], col: str) -> float:
    values = [float(s[col]) for s in group if s[col] not in ("", None) and float(s[col]) > 0]
    return max(values) / min(values) if len(values) > 1 else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aic-root")
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "silicon_sample.csv")
    args = ap.parse_args()
    root = aic_root(args.aic_root)
    version = package_version(root)
    with open(root / "systems" / "silicon_sample.csv", newline="") as f:
        samples = list(csv.DictReader(f))
    everything = len(samples)
    samples, dropped, differ = repeats(samples)
    rows = [r for s in samples for r in convert(s, version)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"{everything} samples, {dropped} of them a copy of another (same configuration, engine version and "
          f"measured TTFT and TPOT): {len(samples)} samples -> {len(rows)} rows in {args.out}")
    ttft_spread, tpot_spread = ([_spread(g, c) for _, g in differ] for c in MEASURED)
    wide = [g for (_, g), a, b in zip(differ, ttft_spread, tpot_spread, strict=True) if max(a, b) > 1.2]
    print(f"configurations measured more than once with different results: {len(differ)}; their measurements "
          f"differ by more than 20% in {len(wide)} (TPOT max/min median "
          f"{statistics.median(tpot_spread) if differ else 1.0:.2f}, largest {max(tpot_spread, default=1.0):.2f}; "
          f"TTFT largest {max(ttft_spread, default=1.0):.2f}), "
          f"{sum(len({s['backend_version'] for s in g}) > 1 for g in wide)} of those across engine versions")
    mapped = [s for s in samples if s["model_path"] in MODELS and s["system"] in SYSTEMS]
    print(f"mapped samples (model and system known to Mantile): {len(mapped)} of {len(samples)}")
    marked = [s["id"] for s in samples if s["id"] in IMPOSSIBLE]
    print(f"marked impossible as stated (check column; validate leaves them out): {len(marked)} (IMPOSSIBLE)")
    print("\nsamples per engine / system / precision / mode (mapped / all):")
    allc = Counter((s["backend"], s["system"], s["precision"] or "bf16?", s["mode"]) for s in samples)
    mapc = Counter((s["backend"], s["system"], s["precision"] or "bf16?", s["mode"]) for s in mapped)
    for k in sorted(allc):
        print(f"  {' / '.join(k):<40} {mapc.get(k, 0):>5} / {allc[k]:>5}")
    print("\nunmapped models:", ", ".join(sorted({s["model_path"] for s in samples} - set(MODELS))))
    print("unmapped systems:", ", ".join(sorted({s["system"] for s in samples} - set(SYSTEMS))))
    print("mapped samples per model:", dict(Counter(MODELS[s["model_path"]] for s in mapped)))


if __name__ == "__main__":
    main()
