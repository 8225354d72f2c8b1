"""Fit Mantile's few kernel constants to the measured kernel tables of NVIDIA aiconfigurator.

    pip install 'mantile[aiconfigurator]'          # or: a separate venv, then --aic-root <pkg dir>
    python benchmarks/aiconfigurator/fit_kernels.py [--systems h100_sxm,b200_sxm] [--engines trtllm]
        [--families gemm,attention,comm,moe] [--write]

The tables (Apache-2.0 ``aiconfigurator-core`` wheel, ``systems/data/<system>/<family>/<engine>/<version>/
*.parquet``) are read in place from the installed package; nothing of them is copied into this
repository and Mantile never calls aiconfigurator at run time. For each system and engine the newest
version directory that holds the table is used. The structure is Mantile's physics; the data only set
its constants:

GEMM ([M x K] @ [K x N], one dtype block each; mirrors mantile/costs/kernels.py ``gemm`` and
``wave_efficiency`` -- restated here on purpose, not imported, so that a refactor of mantile/costs
cannot silently change what was fitted):
    t = max(2MNK / (peak[dtype] * gemm_efficiency * K/(K + gemm_k_half) * wave_eff),
            bytes / (hbm_bw * memory_efficiency)) + kernel_overhead_us * (1 + split>1) + gemm_overhead_us
    bytes = K*N*w_bytes + (M*K + M*N)*2 + split-K fp32 partials
    wave_eff = units / (ceil(units / SMs) * SMs), units = ceil(M/tile_m) * ceil(N/tile_n) * split-K
The quantized tables (fp8, fp8_block, nvfp4) time ``Linear.forward`` on a bf16 input, so they INCLUDE
the activation-quantize kernel (per-tensor static FP8, per-token-group FP8, or NVFP4 quantize).
Mantile has no separate quantize kernel, so the fitted constants absorb it (see RESULTS.md; with
``--quant-kernel`` the fit adds an explicit memory-bound quantize kernel instead, as a check).

Attention (mirrors kernels.attention_core):
    prefill (context, causal, q_len = kv_len = isl, one kernel):
        t = max(2*b*h*isl^2*d / (peak * attention_efficiency * d/(d + attention_head_dim_half) * waves),
                bytes / (hbm_bw * memory_efficiency)) + kernel_overhead_us + attention_overhead_us
    decode (generation, q_len 1, split-KV so waves = 1, kv_len = step + 1):
        t = max(flops / attention rate, KV bytes / (hbm_bw * decode_memory_efficiency))
            + decode_overhead_us
NCCL collectives (nccl-tests, no CUDA graph) and the engines' own all-reduce (CUDA graph):
    t = latency_us + bytes_on_wire / bus_bw; all-reduce 2(n-1)/n * S, all-gather, reduce-scatter,
    all-to-all (n-1)/n * S (S = whole buffer in bytes).
MoE (fused grouped GEMM of the engine, balanced routing): achieved fraction of peak vs tokens per
expert, reported only.

Fits are ``scipy.optimize.least_squares`` on log(predicted / measured) with a soft-L1 loss, on the
shapes that matter for LLM serving (M 1..16384 tokens, N and K 1024..32768 for GEMMs). ``--write``
writes conf/efficiency/fitted/<system>_<engine>.yaml.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "aiconfigurator-core"
ENGINES = ("trtllm", "vllm", "sglang")
DEFAULT_SYSTEMS = ("h100_sxm", "h200_sxm", "b200_sxm", "gb200", "b300_sxm", "gb300", "a100_sxm", "l40s")


# --------------------------------------------------------------------------------------------------
# Devices: datasheet figures. Where Mantile has a hardware file its numbers are read from it; the
# others are datasheet values written here (dense TFLOP/s, TB/s, SMs, L2 MiB, NVLink GB/s per
# direction per GPU).
# --------------------------------------------------------------------------------------------------

MANTILE_HARDWARE = {"h100_sxm": "nvidia_h100_80gb", "h200_sxm": "nvidia_h200_141gb",
                    "b200_sxm": "nvidia_b200_180gb", "gb200": "nvidia_gb200_single",
                    "a100_sxm": "nvidia_a100_80gb"}
OTHER_HARDWARE = {
    # NVIDIA HGX B300 / GB300 NVL72 spec tables (dense = sparse / 2; FP4 dense 14 / 15 PF as quoted);
    # 160 SMs per Blackwell Ultra GPU (NVIDIA 'Inside Blackwell Ultra' blog) [uncertain for B300 SKUs]
    "b300_sxm": dict(generation="blackwell", sms=160, peak={"bf16": 2250, "fp8": 4500, "fp4": 14000},
                     hbm_tb_s=7.7, link_gb_s=900),
    "gb300": dict(generation="blackwell", sms=160, peak={"bf16": 2500, "fp8": 5000, "fp4": 15000},
                  hbm_tb_s=8.0, link_gb_s=900),
    # L40S datasheet: 142 SMs, BF16 362 TF, FP8 733 TF dense, 864 GB/s GDDR6, PCIe Gen4 x16
    "l40s": dict(generation="ampere", sms=142, peak={"bf16": 362, "fp8": 733, "int8": 733},
                 hbm_tb_s=0.864, link_gb_s=32),
    # RTX PRO 6000 Blackwell Server: 188 SMs, 1.79 TB/s GDDR7, PCIe Gen5 (peaks as in aiconfigurator's
    # system file, dense at 2430 MHz)
    "rtx_pro_6000_server": dict(generation="blackwell", sms=188,
                                peak={"bf16": 468, "fp8": 936, "fp4": 1871}, hbm_tb_s=1.792, link_gb_s=64),
}
L2_MIB = {"hopper": 50, "blackwell": 126, "ampere": 40}  # H100 50 MB, B200 126 MB, A100 40 MB


@dataclass
class Device:
    system: str
    generation: str
    sms: int
    peak: dict  # dtype -> FLOP/s
    hbm: float  # bytes/s
    link: float  # scale-up bytes/s per direction
    eff: dict = field(default_factory=dict)  # Mantile generation profile (conf/efficiency/<gen>.yaml)


def device(system: str) -> Device:
    if system in MANTILE_HARDWARE:
        hw = yaml.safe_load((REPO / "conf/hardware" / f"{MANTILE_HARDWARE[system]}.yaml").read_text())
        d = hw["device"]
        peak = {k: v * 1e12 for k, v in d["peak_tflops"].items()}
        link = hw["interconnect"]["scale_up"]["bandwidth_gb_per_s_per_device"] * 1e9
        gen, sms, hbm = d["generation"], d["compute_units"], d["hbm_bandwidth_tb_per_s"] * 1e12
    else:
        o = OTHER_HARDWARE[system]
        peak = {k: v * 1e12 for k, v in o["peak"].items()}
        gen, sms, hbm, link = o["generation"], o["sms"], o["hbm_tb_s"] * 1e12, o["link_gb_s"] * 1e9
    peak.setdefault("int8", peak.get("fp8", 2 * peak["bf16"]))
    eff = yaml.safe_load((REPO / "conf/efficiency" / f"{gen}.yaml").read_text())
    return Device(system, gen, sms, peak, hbm, link, eff)


# --------------------------------------------------------------------------------------------------
# The package's data
# --------------------------------------------------------------------------------------------------

def aic_root(arg: str | None) -> Path:
    """The installed aiconfigurator_core package directory (holds systems/data)."""
    for cand in (arg, os.environ.get("AICONFIGURATOR_ROOT")):
        if cand:
            return Path(cand)
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    for p in sorted(Path("/work").glob("venv-aic/lib/python3*/site-packages/aiconfigurator_core")):
        return p
    sys.exit("aiconfigurator-core not found: pip install 'mantile[aiconfigurator]' or pass --aic-root")


def package_version(root: Path) -> str:
    for d in root.parent.glob("aiconfigurator_core-*.dist-info"):
        return d.name.removesuffix(".dist-info").split("-")[1]
    return "unknown"


def _vkey(v: str):
    from packaging.version import InvalidVersion, Version
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def newest(root: Path, system: str, family: str, engine: str, table: str) -> Path | None:
    """Newest <version> directory of system/family/engine that holds ``table`` (not a reuse pointer)."""
    base = root / "systems" / "data" / system / family / engine
    if not base.is_dir():
        return None
    versions = sorted((p for p in base.iterdir() if (p / table).is_file()), key=lambda p: _vkey(p.name))
    return versions[-1] / table if versions else None


def rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root / "systems" / "data"))


# --------------------------------------------------------------------------------------------------
# Physics (restated from mantile/costs/kernels.py; keep in step with it)
# --------------------------------------------------------------------------------------------------

def wave_efficiency(dev: Device, rows, cols, depth, groups=1.0):
    """kernels.wave_efficiency: tile quantization with split-K (a grouped GEMM: every group's tiles)."""
    e = dev.eff
    tiles = np.ceil(rows / e["gemm_tile_m"]) * np.ceil(cols / e["gemm_tile_n"]) * groups
    split = np.maximum(np.minimum(np.floor(dev.sms / np.maximum(tiles, 1)),
                                  np.floor(depth / e["gemm_split_k_min_depth"])), 1.0)
    units = tiles * split
    return units / (np.ceil(units / dev.sms) * dev.sms), split


def gemm_time(dev: Device, m, n, k, peak, w_bytes, eff, k_half, overhead_us, mem_eff=None,
              quant_bytes=0.0):
    """kernels.gemm (one group) + Cost.kernel: seconds. ``quant_bytes`` > 0 adds an activation-quantize
    kernel (reads M*K bf16, writes M*K*quant_bytes) as a separate memory-bound kernel."""
    mem_bw = dev.hbm * (mem_eff if mem_eff is not None else dev.eff["memory_efficiency"])
    ko = dev.eff["kernel_overhead_us"] * 1e-6
    flops = 2.0 * m * n * k
    waves, split = wave_efficiency(dev, m, n, k)
    partials = (split > 1) * 8.0 * split * m * n
    nbytes = k * n * w_bytes + (m * k + m * n) * 2.0 + partials
    rate = peak * eff * k / (k + k_half) * waves
    t = np.maximum(flops / rate, nbytes / mem_bw) + ko * (1.0 + (split > 1)) + overhead_us * 1e-6
    if np.any(quant_bytes):
        t = t + m * k * (2.0 + quant_bytes) / mem_bw + ko
    return t


def attention_time(dev: Device, b, q, kv, h, kvh, d, peak, a_bytes, kv_bytes, att_eff, d_half,
                   causal=True, split_kv=False, mem_eff=None):
    """kernels.attention_core without the launch overhead: seconds of max(compute, memory)."""
    mem_bw = dev.hbm * (mem_eff if mem_eff is not None else dev.eff["memory_efficiency"])
    kv_eff = kv - q / 2.0 if causal else kv
    flops = 4.0 * b * h * q * kv_eff * d
    nbytes = 2.0 * b * q * h * d * a_bytes + 2.0 * b * kv * kvh * d * kv_bytes
    if split_kv:
        waves = 1.0
    else:
        tiles = b * h * np.ceil(q / dev.eff["gemm_tile_m"])
        waves = tiles / (np.ceil(tiles / dev.sms) * dev.sms)
    rate = peak * att_eff * d / (d + d_half)
    return np.maximum(flops / (rate * waves), nbytes / mem_bw)


# --------------------------------------------------------------------------------------------------
# Fitting helpers
# --------------------------------------------------------------------------------------------------

def errors(pred, meas) -> dict:
    e = pred / meas - 1.0
    return {"n": int(len(e)), "mape_pct": float(np.mean(np.abs(e)) * 100),
            "median_signed_pct": float(np.median(e) * 100), "max_abs_pct": float(np.max(np.abs(e)) * 100)}


def fit(fun, x0, lo, hi):
    """least_squares on log(pred/meas) residuals returned by ``fun``."""
    r = least_squares(fun, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, x_scale="jac")
    return r.x


def fmt_err(e: dict) -> str:
    return (f"n={e['n']:>6} MAPE {e['mape_pct']:5.1f}%  median {e['median_signed_pct']:+5.1f}%  "
            f"max {e['max_abs_pct']:6.1f}%")


# --------------------------------------------------------------------------------------------------
# GEMM
# --------------------------------------------------------------------------------------------------

# dtype in the table -> (Mantile peak key, weight bytes per element incl. scales, activation-quant bytes)
GEMM_DTYPES = {
    "bfloat16": ("bf16", 2.0, 0.0),
    "float16": ("bf16", 2.0, 0.0),
    "fp8": ("fp8", 1.0, 1.0),
    "fp8_block": ("fp8", 1.0 + 4.0 / 128 ** 2, 1.0 + 4.0 / 128),
    "nvfp4": ("fp4", 0.5 + 1.0 / 16, 0.5 + 1.0 / 16),
    "int4_wo": ("bf16", 0.5 + 2.0 / 128, 0.0),  # weight-only: bf16 tensor-core math
    "int8_wo": ("bf16", 1.0 + 2.0 / 128, 0.0),
    "sq": ("int8", 1.0, 1.0),  # SmoothQuant W8A8
}


def in_domain_gemm(df):
    return (df.m <= 16384) & df.n.between(1024, 32768) & df.k.between(1024, 32768)


# (engine, dtype) tables timed without CUDA graphs: host launch time dominates small shapes, so they
# cannot set GPU-side constants (aiconfigurator collector/vllm/collect_gemm.py:
# use_cuda_graph=gemm_type != "fp8_block")
NO_CUDA_GRAPH = {("vllm", "fp8_block")}


def fit_gemm(dev: Device, path: Path, quant_kernel: bool, engine: str) -> dict:
    df = pd.read_parquet(path, columns=["gemm_dtype", "m", "n", "k", "latency"])
    # several kernels for one shape (vLLM's fp8_block): the engine picks per shape; keep the fastest
    df = df.groupby(["gemm_dtype", "m", "n", "k"], as_index=False).latency.min()
    out = {}
    for dtype, g in df.groupby("gemm_dtype"):
        if dtype not in GEMM_DTYPES or (engine, dtype) in NO_CUDA_GRAPH:
            continue
        key, wb, qb = GEMM_DTYPES[dtype]
        if key not in dev.peak:
            continue
        qb = qb if quant_kernel else 0.0
        g = g[in_domain_gemm(g)]
        if len(g) < 20:
            continue
        m, n, k, t = (g[c].to_numpy(float) for c in ("m", "n", "k", "latency"))
        t = t * 1e-3
        peak = dev.peak[key]

        def res(x, m=m, n=n, k=k, t=t, peak=peak, wb=wb, qb=qb):
            return np.log(gemm_time(dev, m, n, k, peak, wb, x[0], x[1], x[2], quant_bytes=qb) / t)

        x = fit(res, [0.7, 200.0, 1.0], [0.05, 0.0, -dev.eff["kernel_overhead_us"]], [1.0, 8192.0, 100.0])
        pred = gemm_time(dev, m, n, k, peak, wb, *x, quant_bytes=qb)
        # diagnostics: memory efficiency implied by weight streaming (M <= 16, weights >= 64 MiB, so
        # past L2) and best achieved fraction of peak
        big = (m <= 16) & (n * k * wb >= 64 * 2 ** 20)
        ko = (dev.eff["kernel_overhead_us"] + x[2]) * 1e-6
        mem_eff = (np.median((n * k * wb + (m * k + m * n) * 2)[big] / np.maximum(t[big] - ko, 1e-7)) / dev.hbm
                   if big.any() else float("nan"))
        frac = 2 * m * n * k / t / peak
        small = m <= 64
        out[dtype] = {
            "peak_key": key, "gemm_efficiency": float(x[0]), "gemm_k_half": float(x[1]),
            "gemm_overhead_us": float(x[2]), "implied_memory_efficiency": float(mem_eff),
            "best_fraction_of_peak": float(frac.max()),
            "errors": errors(pred, t),
            "errors_m_le_64": errors(pred[small], t[small]) if small.any() else None,
            "errors_m_gt_64": errors(pred[~small], t[~small]) if (~small).any() else None,
        }
    return out


# --------------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------------

BYTES = {"bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "int8": 1.0, "nvfp4": 0.5625}
PEAK_KEY = {"bfloat16": "bf16", "float16": "bf16", "fp8": "fp8"}


def read_attention(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    if "window_size" not in df:  # older tables: no sliding-window rows
        df["window_size"] = 0
    return df


def fit_context(dev: Device, path: Path) -> dict:
    """Fitted on isl >= 1024 (where prefill attention costs matter); shorter prompts are reported apart:
    their efficiency ramps up with isl, which the formula does not have."""
    df = read_attention(path)
    df = df[(df.window_size == 0) & (df.isl >= 128) & (df.batch_size * df.isl <= 262144)]
    keys = ["attn_dtype", "kv_cache_dtype", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"]
    df = df.groupby(keys, as_index=False).latency.min()
    out = {}
    ko = dev.eff["kernel_overhead_us"]
    for (adt, kdt), g in df.groupby(["attn_dtype", "kv_cache_dtype"]):
        if PEAK_KEY.get(adt) not in dev.peak or len(g) < 20:
            continue
        b, s, h, kvh, d, t = (g[c].to_numpy(float) for c in
                              ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "latency"))
        t = t * 1e-3
        peak, ab, kb = dev.peak[PEAK_KEY[adt]], BYTES[adt], BYTES[kdt]

        def pred_of(x, b=b, s=s, h=h, kvh=kvh, d=d, peak=peak, ab=ab, kb=kb):
            # x[2] = attention_kv_half: the key loop amortizes each query tile's prologue and epilogue
            # as gemm_k_half does the K loop (kv_half = 0: Mantile's formula as it is)
            return (attention_time(dev, b, s, s, h, kvh, d, peak, ab, kb, x[0] * s / (s + x[2]), x[1])
                    + ko * 1e-6)

        long = s >= 1024
        if long.sum() < 10:
            continue
        x0 = fit(lambda x, t=t, p=pred_of, sel=long: np.log(p([x[0], x[1], 0.0])[sel] / t[sel]),
                 [0.5, 50.0], [0.02, 0.0], [1.0, 1024.0])
        x = fit(lambda x, t=t, p=pred_of: np.log(p(x) / t), [0.5, 50.0, 500.0], [0.02, 0.0, 0.0],
                [1.0, 1024.0, 16384.0])
        pred0, pred = pred_of([x0[0], x0[1], 0.0]), pred_of(x)
        out[f"{PEAK_KEY[adt]}_kv_{PEAK_KEY.get(kdt, kdt)}"] = {
            "attention_efficiency": float(x0[0]), "attention_head_dim_half": float(x0[1]),
            "efficiency_at_head_dim_128": float(x0[0] * 128 / (128 + x0[1])),
            "errors": errors(pred0[long], t[long]),
            "errors_isl_128_to_1023": errors(pred0[~long], t[~long]) if (~long).any() else None,
            "with_kv_half": {"attention_efficiency": float(x[0]), "attention_head_dim_half": float(x[1]),
                             "attention_kv_half": float(x[2]), "errors": errors(pred, t)},
        }
    return out


def fit_generation(dev: Device, path: Path, att: dict) -> dict:
    df = read_attention(path)
    df = df[(df.window_size == 0) & (df.step >= 1)]
    keys = ["kv_cache_dtype", "batch_size", "step", "num_heads", "num_key_value_heads", "head_dim"]
    df = df.groupby(keys, as_index=False).latency.min()
    out = {}
    for kdt, g in df.groupby("kv_cache_dtype"):
        if kdt not in BYTES or len(g) < 20:
            continue
        b, st, h, kvh, d, t = (g[c].to_numpy(float) for c in
                               ("batch_size", "step", "num_heads", "num_key_value_heads", "head_dim", "latency"))
        t, kv = t * 1e-3, st + 1.0
        ctx = att.get("bf16_kv_bf16") or {}
        a_eff, d_half = ctx.get("attention_efficiency", dev.eff["attention_efficiency"]), \
            ctx.get("attention_head_dim_half", dev.eff["attention_head_dim_half"])
        peak, kb = dev.peak["bf16"], BYTES[kdt]

        def pred_of(x, b=b, kv=kv, h=h, kvh=kvh, d=d, kb=kb, peak=peak, a_eff=a_eff, d_half=d_half):
            return (attention_time(dev, b, 1.0, kv, h, kvh, d, peak, 2.0, kb, a_eff, d_half,
                                   split_kv=True, mem_eff=x[0]) + (x[1] + x[2] * b) * 1e-6)

        x = fit(lambda x, t=t, p=pred_of: np.log(p(x) / t), [0.7, 5.0, 0.1], [0.05, 0.0, 0.0], [1.0, 200.0, 10.0])
        pred = pred_of(x)
        kvbytes = 2 * b * kv * kvh * d * kb
        big = kvbytes >= 256 * 2 ** 20
        out[f"kv_{PEAK_KEY.get(kdt, kdt)}"] = {
            "decode_memory_efficiency": float(x[0]), "decode_overhead_us": float(x[1]),
            "decode_per_sequence_us": float(x[2]),
            "errors": errors(pred, t),
            "errors_kv_ge_256MiB": errors(pred[big], t[big]) if big.any() else None,
        }
    return out


# --------------------------------------------------------------------------------------------------
# Collectives
# --------------------------------------------------------------------------------------------------

WIRE = {"all_reduce": lambda n: 2.0 * (n - 1) / n, "all_gather": lambda n: (n - 1) / n,
        "reduce_scatter": lambda n: (n - 1) / n, "alltoall": lambda n: (n - 1) / n}


def fit_collective(size_bytes, t_s, n: int, op: str) -> dict:
    wire = WIRE[op](n) * size_bytes

    def pred_of(x):
        return x[0] * 1e-6 + wire / (x[1] * 1e9)

    x = fit(lambda x: np.log(pred_of(x) / t_s), [10.0, 300.0], [0.0, 1.0], [1000.0, 10000.0])
    busbw = wire / t_s / 1e9
    return {"latency_us": float(x[0]), "bus_bandwidth_gb_s": float(x[1]),
            "max_measured_bus_bandwidth_gb_s": float(busbw.max()),
            "size_at_max_bytes": int(size_bytes[np.argmax(busbw)]),
            "errors": errors(pred_of(x), t_s), "_busbw": busbw}


def fit_nccl(dev: Device, path: Path) -> dict:
    df = pd.read_parquet(path)
    df = df[df.nccl_dtype == "half"]
    out = {}
    for (op, n), g in df.groupby(["op_name", "num_gpus"]):
        if op not in WIRE:
            continue
        s = g.message_size.to_numpy(float) * 2.0  # elements of half -> bytes (collect_nccl.py)
        r = fit_collective(s, g.latency.to_numpy(float) * 1e-3, int(n), op)
        above = s[r.pop("_busbw") > dev.link / 1e9]
        r["bus_bw_above_link_rate_from_bytes"] = int(above.min()) if len(above) else None
        out[f"{op}_{n}"] = r
    return out


def fit_custom_allreduce(dev: Device, path: Path) -> dict:
    df = pd.read_parquet(path)
    graph = df.kernel_source.str.contains("graph", case=False)
    if graph.any():  # vLLM / SGLang time eager and CUDA-graph launches; serving decode uses graphs
        df = df[graph]
    out = {}
    for (dt, n), g in df.groupby(["allreduce_dtype", "num_gpus"]):
        s = g.message_size.to_numpy(float) * BYTES.get(dt, 2.0)  # elements -> bytes
        r = fit_collective(s, g.latency.to_numpy(float) * 1e-3, int(n), "all_reduce")
        above = s[r.pop("_busbw") > dev.link / 1e9]
        r["bus_bw_above_link_rate_from_bytes"] = int(above.min()) if len(above) else None
        out[f"all_reduce_{n}"] = r
    return out


# --------------------------------------------------------------------------------------------------
# MoE (report only)
# --------------------------------------------------------------------------------------------------

def moe_report(dev: Device, path: Path) -> dict:
    df = pd.read_parquet(path)
    df = df[(df.distribution == "balanced") & (df.moe_tp_size == 1) & (df.moe_ep_size == 1)]
    df = df.groupby(["moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts"],
                    as_index=False).latency.min()
    out = {}
    for dtype, g in df.groupby("moe_dtype"):
        key = GEMM_DTYPES.get(dtype, ("fp4" if "fp4" in dtype else "bf16",))[0]
        if key not in dev.peak:
            key = "bf16"
        tok, h, f, k, e, t = (g[c].to_numpy(float) for c in
                              ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "latency"))
        t = t * 1e-3
        flops = 2.0 * tok * k * h * f * 3.0  # gated: up+gate (2f) and down (f)
        frac = flops / t / dev.peak[key]
        tpe = tok * k / e
        bins = [(0, 1), (1, 8), (8, 64), (64, 512), (512, 1e9)]
        out[dtype] = {f"tokens_per_expert_{lo:g}-{hi:g}": float(np.median(frac[(tpe > lo) & (tpe <= hi)]))
                      for lo, hi in bins if ((tpe > lo) & (tpe <= hi)).any()}
        out[dtype]["peak_key"] = key
    return out


# --------------------------------------------------------------------------------------------------
# MoE: grouped-GEMM constants (costs/feedforward.MoEMLP's experts_gate_up + act_mul + experts_down)
# --------------------------------------------------------------------------------------------------

# fused-MoE table format -> (Mantile peak key, weight bytes per element incl. scales)
MOE_DTYPES = {
    "bfloat16": ("bf16", 2.0),
    "fp8": ("fp8", 1.0),
    "fp8_block": ("fp8", 1.0 + 4.0 / 128 ** 2),
    "nvfp4": ("fp4", 0.5 + 1.0 / 16),
    "w4a8_mxfp4_mxfp8": ("fp4", 0.5 + 1.0 / 32),  # Mantile mxfp4: computes at the fp4 peak
    "w4a16_mxfp4": ("bf16", 0.5 + 1.0 / 32),  # Mantile w4a16: bf16 math
}


def moe_tables(root: Path, system: str, engine: str) -> tuple[pd.DataFrame, list[Path]]:
    """Every version's fused-MoE table of (system, engine), newest first per shape and moe_tp x moe_ep slice
    (the slice of the experts one device runs): balanced routing, gated experts (the non-gated kernels are
    another layer type)."""
    base = root / "systems" / "data" / system / "moe" / engine
    paths = sorted(base.glob("*/moe_perf.parquet"), key=lambda p: _vkey(p.parent.name), reverse=True)
    frames = []
    for newness, p in enumerate(reversed(paths)):
        df = pd.read_parquet(p)
        df = df[(df.distribution == "balanced") & ~df.kernel_source.str.contains("nongated")
                & df.moe_dtype.isin(list(MOE_DTYPES))]
        frames.append(df.assign(_version=newness))
    if not frames:
        return pd.DataFrame(), []
    df = pd.concat(frames)
    keys = ["moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
            "moe_ep_size"]
    # the newest version that measured a shape; several kernels of one version: the fastest (the engine picks)
    df = df[df._version == df.groupby(keys)._version.transform("max")]
    return df.groupby(keys, as_index=False).latency.min(), paths


def moe_time(dev: Device, tok, h, f, k, e, peak, w_bytes, eff, k_half, overhead_us, mem_eff=None, op_us=0.0):
    """MoEMLP's routed experts on one device (ep = tp = 1), seconds: two grouped GEMMs (E groups of
    tok*k/E rows; weights of the experts the table's routing touches) and the gated activation between;
    the expert weights stream at ``mem_eff`` of HBM (the generation's memory_efficiency when None); ``op_us``:
    the op's fixed time beyond these kernels (its routing, permute and finalize kernels), once per op.

    The tables' 'balanced' routing (aiconfigurator collector/helper.py ``balanced_logits``) sends token i's
    j-th pick to expert (i + j * ceil(E/k)) mod E, spread evenly when tokens < ceil(E/k): every pick lands on
    a new expert until all E are touched, min(E, tokens * k) of them. Mantile's serving model uses the
    expectation under random routing instead (1 - (1 - k/E)^tokens of the E), which at one token per expert
    touches 63%: fitting the tables with that count made a balanced table's weight streaming look 25-35%
    slower than it is."""
    mem_bw = dev.hbm * (dev.eff["memory_efficiency"] if mem_eff is None else mem_eff)
    ko = dev.eff["kernel_overhead_us"] * 1e-6
    rows = tok * k / e
    touched = np.minimum(e, tok * k)
    total = 0.0
    for cols, depth in ((2.0 * f, h), (h, f)):
        flops = 2.0 * rows * cols * depth * e
        waves, split = wave_efficiency(dev, rows, cols, depth, e)
        partials = (split > 1) * 8.0 * split * rows * cols * e
        nbytes = depth * cols * w_bytes * touched + (rows * depth + rows * cols) * 2.0 * e + partials
        rate = peak * eff * depth / (depth + k_half) * waves
        total = total + np.maximum(flops / rate, nbytes / mem_bw) + ko * (1.0 + (split > 1)) + overhead_us * 1e-6
    act = 3.0 * tok * k * f * 2.0 / mem_bw + ko  # gated activation: read 2f, write f (16-bit), one kernel
    return total + act + op_us * 1e-6


#: rows that set the fused-MoE kernel's weight-streaming rate (``memory_efficiency``): at most this many
#: tokens per expert (the op streams the touched experts' weights) and at least WEIGHT_BOUND_MIN_S of
#: streaming at the generation's memory efficiency, so that the routing, permute and finalize kernels' fixed
#: costs (which an isolated op benchmark times without the engine's fusions and CUDA graphs) stay small
MOE_WEIGHT_BOUND_MAX_TOKENS_PER_EXPERT = 2.0
WEIGHT_BOUND_MIN_S = 100e-6
#: fewer such rows than this: no weight-streaming rate is fitted (the generation's applies)
MOE_WEIGHT_BOUND_MIN_ROWS = 3
#: a fitted rate whose rows scatter more than this (MAPE, percent) describes no one kernel (e.g. vLLM's
#: per-tensor FP8 Triton MoE on Hopper: 0.14 of HBM at 150% MAPE, shapes with and without a tuned config):
#: it is reported, not written as memory_efficiency
MOE_WEIGHT_BOUND_MAX_MAPE = 25.0

#: tokens per expert from which a fused-MoE row sets the grouped GEMM's efficiency: below, the op is
#: weight streaming plus the fixed cost of its routing, permute and finalize kernels, which an isolated
#: op benchmark times without the engine's fusions and CUDA graphs (fitting a fixed cost there put
#: 30-130 us on every expert GEMM, three times a whole DeepSeek decode step's share at batch 1)
MOE_FIT_MIN_TOKENS_PER_EXPERT = 64


#: expert-parallel slices (moe_tp = 1, moe_ep > 1) with fewer rows than this at MOE_FIT_MIN_TOKENS_PER_EXPERT or
#: more tokens per expert get no efficiency of their own (the ep = 1 efficiency applies)
MOE_EP_MIN_ROWS = 3

#: tokens per expert up to which a fused-MoE row, of any moe_tp x moe_ep slice the table measured, sets the op's
#: fixed cost beyond its kernels (``op_overhead_us``) when its modelled weight streaming is under
#: WEIGHT_BOUND_MIN_S: the rows whose time is the op's launches and fixed work, not its GEMMs
MOE_OP_MAX_TOKENS_PER_EXPERT = 2.0


def fit_moe(dev: Device, plans: pd.DataFrame, dense: dict) -> dict:
    """Per format, from ``moe_tables``' rows (``plans``, every moe_tp x moe_ep slice):
    - the grouped GEMM's efficiency, least squares on log(pred/meas) over every ep = tp = 1 shape at
      MOE_FIT_MIN_TOKENS_PER_EXPERT or more tokens per expert; k_half and the fixed cost are the dense
      GEMM's of the same peak;
    - the weight-streaming rate, on the ep = tp = 1 weight-bound rows;
    - the op's fixed cost beyond its kernels (``op_overhead_us``): the median of measured - modelled over
      the rows of every slice at MOE_OP_MAX_TOKENS_PER_EXPERT or fewer tokens per expert that stream less
      than WEIGHT_BOUND_MIN_S, at least 0; the efficiency and the streaming rate are then fitted again with it.
    Errors overall and by tokens per expert, on the ep = tp = 1 rows."""
    out = {}
    df = plans[(plans.moe_tp_size == 1) & (plans.moe_ep_size == 1)]
    for dtype, g in df.groupby("moe_dtype"):
        key, wb = MOE_DTYPES[dtype]
        if key not in dev.peak:
            continue
        same = [v for v in dense.values() if v.get("peak_key") == key]
        k_half = float(same[0]["gemm_k_half"]) if same else 0.0
        overhead = float(same[0]["gemm_overhead_us"]) if same else 0.0
        tok, h, f, k, e, t = (g[c].to_numpy(float) for c in
                              ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "latency"))
        t = t * 1e-3
        peak = dev.peak[key]
        tpe = tok * k / e
        big = tpe >= MOE_FIT_MIN_TOKENS_PER_EXPERT
        if not big.any():
            continue
        # the kernel's weight-streaming rate, on the weight-bound rows; never above the generation's dense
        # streaming rate (tables that imply more, e.g. TensorRT-LLM's NVFP4 MoE on B200 at 1.2x, re-read
        # experts that stay in L2 across the benchmark's repeats, which a serving step does not)
        gen_mem = dev.eff["memory_efficiency"]
        touched = np.minimum(e, tok * k)
        stream = 3.0 * h * f * wb * touched / (dev.hbm * gen_mem)
        bound = (tpe <= MOE_WEIGHT_BOUND_MAX_TOKENS_PER_EXPERT) & (stream >= WEIGHT_BOUND_MIN_S)

        def rates(op_us: float, tok=tok, h=h, f=f, k=k, e=e, t=t, big=big, bound=bound, peak=peak, wb=wb,
                  k_half=k_half, overhead=overhead, gen_mem=gen_mem) -> tuple[float, float | None]:
            """(grouped GEMM efficiency, weight-streaming rate or None) with the op's fixed cost ``op_us``."""
            shape = (tok[big], h[big], f[big], k[big], e[big])

            def res(x, shape=shape, tb=t[big]):
                return np.log(moe_time(dev, *shape, peak, wb, x[0], k_half, overhead, op_us=op_us) / tb)

            x = fit(res, [0.5], [0.02], [1.0])
            if bound.sum() < MOE_WEIGHT_BOUND_MIN_ROWS:
                return float(x[0]), None
            wshape = (tok[bound], h[bound], f[bound], k[bound], e[bound])

            def res_mem(m, shape=wshape, tb=t[bound], eff=x[0]):
                return np.log(moe_time(dev, *shape, peak, wb, eff, k_half, overhead, mem_eff=m[0], op_us=op_us) / tb)

            return float(x[0]), min(float(fit(res_mem, [gen_mem], [0.02], [2.0])[0]), gen_mem)

        efficiency, mem_eff = rates(0.0)
        op_us, op_rows = 0.0, 0
        if len(p := plans[plans.moe_dtype == dtype]):
            ptp, pep = p.moe_tp_size.to_numpy(float), p.moe_ep_size.to_numpy(float)
            ptok, ph, pf, pk, pe = (p[c].to_numpy(float) for c in
                                    ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts"))
            # one device's slice: E/ep local experts get tok*k/ep of the picks (balanced), each f/tp wide
            lt, lf, le = ptok / pep, pf / ptp, pe / pep
            lstream = 3.0 * ph * lf * wb * np.minimum(le, lt * pk) / (dev.hbm * gen_mem)
            low = (ptok * pk / pe <= MOE_OP_MAX_TOKENS_PER_EXPERT) & (lstream < WEIGHT_BOUND_MIN_S)
            if low.sum() >= MOE_WEIGHT_BOUND_MIN_ROWS:
                pred = moe_time(dev, lt[low], ph[low], lf[low], pk[low], le[low], peak, wb, efficiency, k_half,
                                overhead, mem_eff=mem_eff)
                op_us, op_rows = max(float(np.median(p.latency.to_numpy(float)[low] * 1e-3 - pred)) * 1e6, 0.0), \
                    int(low.sum())
                if op_us > 0:
                    efficiency, mem_eff = rates(op_us)
        pred = moe_time(dev, tok, h, f, k, e, peak, wb, efficiency, k_half, overhead, mem_eff=mem_eff, op_us=op_us)
        out[dtype] = {"peak_key": key, "gemm_efficiency": efficiency, "gemm_k_half": k_half,
                      "gemm_overhead_us": overhead, "op_overhead_us": op_us, "op_overhead_rows": op_rows,
                      "shapes": int(g.groupby(["hidden_size", "inter_size", "topk", "num_experts"]).ngroups),
                      "errors_fitted": errors(pred[big], t[big]), "errors": errors(pred, t)}
        if mem_eff is not None:
            fitted = errors(pred[bound], t[bound])
            out[dtype]["errors_weight_bound"] = fitted
            if fitted["mape_pct"] <= MOE_WEIGHT_BOUND_MAX_MAPE:
                out[dtype]["memory_efficiency"] = mem_eff
            else:  # reported only; the errors above are the generation's rate's, as Mantile predicts
                out[dtype]["rejected_memory_efficiency"] = mem_eff
                pred = moe_time(dev, tok, h, f, k, e, peak, wb, efficiency, k_half, overhead, op_us=op_us)
                out[dtype]["errors"] = errors(pred, t)
                out[dtype]["errors_fitted"] = errors(pred[big], t[big])
                out[dtype]["errors_weight_bound"] = errors(pred[bound], t[bound])
        for lo, hi in ((0, 8), (8, 128), (128, 1e9)):
            sel = (tpe > lo) & (tpe <= hi)
            if sel.any():
                out[dtype][f"errors_tokens_per_expert_{lo:g}-{hi:g}"] = errors(pred[sel], t[sel])
        ep_fit = fit_moe_ep(dev, plans[plans.moe_dtype == dtype], peak, wb, efficiency, k_half, overhead,
                            out[dtype].get("memory_efficiency"), op_us)
        if ep_fit:
            out[dtype].update(ep_fit)
        tp_fit = fit_moe_tp(dev, plans[plans.moe_dtype == dtype], peak, wb, efficiency, k_half, overhead,
                            out[dtype].get("memory_efficiency"), op_us)
        if tp_fit:
            out[dtype].update(tp_fit)
    return out


def fit_moe_ep(dev: Device, p: pd.DataFrame, peak: float, wb: float, efficiency: float, k_half: float,
               overhead: float, mem_eff: float | None, op_us: float) -> dict:
    """The grouped GEMM's efficiency on each expert-parallel slice (moe_tp = 1, moe_ep > 1) of one format:
    the same least squares as the ep = 1 fit over the slice's rows at MOE_FIT_MIN_TOKENS_PER_EXPERT or more
    tokens per expert, a device running E/ep local experts that get tok * k / ep of the picks (the table's
    num_tokens are the tokens every rank routes, aiconfigurator's MoE query at num_tokens x attention_dp).
    Some kernels keep their ep = 1 rate (TensorRT-LLM's FP8 block-scaled MoE on B200: time 0.52 / 0.28 /
    0.16 of ep = 1 at ep 2 / 4 / 8, ideal 0.5 / 0.25 / 0.125); others lose most of the split (its NVFP4 MoE
    on B200: 1.00 / 0.81 / 0.40 for a Qwen3-235B layer): ``ep_efficiency`` {ep: efficiency}, with the errors
    on the slices' rows before (the ep = 1 efficiency) and after."""
    slices = p[(p.moe_tp_size == 1) & (p.moe_ep_size > 1)]
    eff_by_ep, before, after, meas = {}, [], [], []
    for ep, s in slices.groupby("moe_ep_size"):
        tok, h, f, k, e, t = (s[c].to_numpy(float) for c in
                              ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "latency"))
        t = t * 1e-3
        big = tok * k / e >= MOE_FIT_MIN_TOKENS_PER_EXPERT
        if big.sum() < MOE_EP_MIN_ROWS:
            continue
        shape = (tok[big] / ep, h[big], f[big], k[big], e[big] / ep)

        def res(x, shape=shape, tb=t[big]):
            return np.log(moe_time(dev, *shape, peak, wb, x[0], k_half, overhead, mem_eff=mem_eff, op_us=op_us) / tb)

        x = float(fit(res, [efficiency], [0.01], [1.0])[0])
        eff_by_ep[int(ep)] = x
        before.append(moe_time(dev, *shape, peak, wb, efficiency, k_half, overhead, mem_eff=mem_eff, op_us=op_us))
        after.append(moe_time(dev, *shape, peak, wb, x, k_half, overhead, mem_eff=mem_eff, op_us=op_us))
        meas.append(t[big])
    if not eff_by_ep:
        return {}
    m = np.concatenate(meas)
    return {"ep_efficiency": eff_by_ep, "errors_ep_slices_at_ep1_efficiency": errors(np.concatenate(before), m),
            "errors_ep_slices": errors(np.concatenate(after), m)}


#: the tensor-parallel slice width constant (``slice_width_half``) is written where it takes the MAPE of the slices'
#: rows at MOE_FIT_MIN_TOKENS_PER_EXPERT or more tokens per expert down by at least this many points
MOE_TP_MIN_GAIN_PCT = 2.0


def slice_scale(f_device, f_full, w_half: float):
    """A grouped GEMM's efficiency on a device holding an f_device-wide slice of each expert, over the whole
    expert's (f_full wide, where it was fitted): w / (w + w_half) over f / (f + w_half)."""
    if w_half <= 0:
        return np.ones(np.shape(f_device))
    return (f_device / (f_device + w_half)) / (f_full / (f_full + w_half))


def fit_moe_tp(dev: Device, p: pd.DataFrame, peak: float, wb: float, efficiency: float, k_half: float,
               overhead: float, mem_eff: float | None, op_us: float) -> dict:
    """The grouped GEMM's efficiency on the tensor-parallel slices of the experts (moe_tp > 1, moe_ep = 1: every
    expert on every device, f / tp wide; Mantile's MoE block at tp > 1 without expert parallelism). At the
    efficiency fitted on whole experts the tables' op is too fast on narrow slices, more the narrower (at 64+
    tokens per expert, tp 8: 20-50% short on TensorRT-LLM, 15-25% on vLLM and SGLang). One constant per format,
    ``slice_width_half``: the efficiency times w / (w + w_half) over the whole expert's f / (f + w_half),
    w = f / tp (``slice_scale``; a narrow slice amortizes each tile's fixed work over fewer columns, as
    gemm_k_half does over depth), least squares over the slices' rows at MOE_FIT_MIN_TOKENS_PER_EXPERT or
    more tokens per expert, as ``fit_moe_ep`` fits an expert-parallel slice's. The weight-streaming rate is
    not scaled: the tables' slices at a few tokens per expert are 5-20% slower than modelled too (TensorRT-LLM),
    but the engines' decode steps at TP8 are not (the silicon sample's block-scaled FP8 DeepSeek TPOT came out
    20-35 points too slow with it, RESULTS.md item 10). Written where it takes the MAPE of those rows down by
    MOE_TP_MIN_GAIN_PCT (else ``rejected_slice_width_half``), with the errors before and after, by tp, and on
    the rows below (which it hardly moves)."""
    slices = p[(p.moe_tp_size > 1) & (p.moe_ep_size == 1)]
    tok, h, f, k, e, tp, t = (slices[c].to_numpy(float) for c in
                              ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
                               "latency"))
    t = t * 1e-3
    big = tok * k / e >= MOE_FIT_MIN_TOKENS_PER_EXPERT
    if big.sum() < MOE_EP_MIN_ROWS:
        return {}

    def pred(w_half: float) -> np.ndarray:
        return moe_time(dev, tok, h, f / tp, k, e, peak, wb, efficiency * slice_scale(f / tp, f, w_half), k_half,
                        overhead, mem_eff=mem_eff, op_us=op_us)

    w_half = float(fit(lambda x: np.log(pred(x[0])[big] / t[big]), [100.0], [0.0], [1e5])[0])
    before, after = pred(0.0), pred(w_half)
    by_tp = {}
    for size in sorted({int(v) for v in tp[big]}):
        sel = big & (tp == size)
        a, b = errors(before[sel], t[sel]), errors(after[sel], t[sel])
        by_tp[size] = {"n": a["n"], "mape_pct_at_full_width": a["mape_pct"], "mape_pct": b["mape_pct"],
                       "median_signed_pct_at_full_width": a["median_signed_pct"],
                       "median_signed_pct": b["median_signed_pct"]}
    out = {"errors_tp_slices_at_full_width": errors(before[big], t[big]), "errors_tp_slices_by_tp": by_tp}
    fitted = errors(after[big], t[big])
    if (~big).any():
        out["errors_tp_slices_below_fit_rows"] = {"at_full_width": errors(before[~big], t[~big]),
                                                  "fitted": errors(after[~big], t[~big])}
    if fitted["mape_pct"] <= out["errors_tp_slices_at_full_width"]["mape_pct"] - MOE_TP_MIN_GAIN_PCT:
        out.update(slice_width_half=w_half, errors_tp_slices=fitted)
    else:
        out.update(rejected_slice_width_half=w_half, rejected_errors_tp_slices=fitted)
    return out


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

HEADER = """\
# Constants FITTED by benchmarks/aiconfigurator/fit_kernels.py to the measured kernel tables of
# NVIDIA aiconfigurator ({package}=={version}, Apache-2.0) for {system} / {engine}. The tables are
# not in this repository; `source` lists the files used (under aiconfigurator_core/systems/data/).
# Formulas (Mantile's physics, mantile/costs/kernels.py and comm.py):
#   gemm: t = max(2MNK / (peak[dtype] * gemm_efficiency * K/(K + gemm_k_half) * wave_eff),
#                 bytes / (hbm_bw * memory_efficiency)) + kernel_overhead_us + gemm_overhead_us
#         (wave_eff: {tile_m}x{tile_n} tiles, split-K >= {split} deep, {sms} SMs; memory_efficiency and
#         kernel_overhead_us kept from conf/efficiency/{generation}.yaml). fp8 / fp8_block / nvfp4 timings
#         include the activation-quantize kernel, which these constants absorb.
#     implied_memory_efficiency: weight streaming at M <= 16 (diagnostic, not used by the formula)
#   attention_prefill (causal, one kernel): t = max(2*b*h*s^2*d / (peak * attention_efficiency *
#         d/(d + attention_head_dim_half) * waves), bytes / (hbm_bw * memory_efficiency))
#         + kernel_overhead_us   (fitted on isl >= 1024; with_kv_half: the rate also times
#         s/(s + attention_kv_half), fitted on isl >= 128 -- a constant Mantile does not have yet)
#   attention_decode (split-KV): t = max(flops / attention rate, (Q + KV) bytes / (hbm_bw *
#         decode_memory_efficiency)) + decode_overhead_us + decode_per_sequence_us * b
#         (the whole attention op of the engine; Mantile has no per-sequence term yet)
#   nccl / engine all-reduce: t = latency_us + wire_bytes / (bus_bandwidth_gb_s * 1e9),
#         wire = 2(n-1)/n * S (all-reduce), (n-1)/n * S (all-gather, reduce-scatter, all-to-all)
#   moe_gemm: the fused-MoE op (balanced routing, no TP/EP; every table version, newest per shape) as
#         two grouped GEMMs over E experts (all groups' tiles in one launch) + the gated activation:
#         t = sum of gemm(rows = tokens*k/E, groups E, weights of the touched experts) with
#         gemm_efficiency fitted per format on rows of >= 64 tokens per expert (errors_fitted);
#         gemm_k_half and gemm_overhead_us from the dense fit of the same peak; memory_efficiency: the
#         experts' weight-streaming rate, fitted on rows of <= 2 tokens per expert that stream >= 100 us
#         (errors_weight_bound), at most the generation's; touched experts = min(E, tokens*k) (the tables'
#         balanced routing); op_overhead_us: the op's fixed time beyond these kernels (routing, permute,
#         finalize), once per op: the median of measured - modelled over the rows of every moe_tp x moe_ep
#         slice at <= 2 tokens per expert that stream < 100 us (op_overhead_rows), at least 0, after which
#         the efficiency and streaming rate are fitted again with it; errors: all ep = tp = 1 rows;
#         ep_efficiency {{ep: efficiency}}: the grouped GEMM's efficiency fitted the same way on each expert-
#         parallel slice (moe_tp 1, moe_ep > 1: E/ep local experts, every token routed on each device), whose
#         times keep less than the ideal 1/ep of the ep = 1 time (errors_ep_slices, and at the ep = 1
#         efficiency errors_ep_slices_at_ep1_efficiency); slice_width_half: on each tensor-parallel slice
#         (moe_tp > 1, moe_ep 1: every expert f/tp wide on each device) the grouped GEMM's efficiency times
#         w/(w + slice_width_half) over f/(f + slice_width_half), w = f/tp, fitted the same way over the
#         slices' rows (errors_tp_slices; at the whole-expert efficiency errors_tp_slices_at_full_width; by tp
#         errors_tp_slices_by_tp; the rows below 64 tokens per expert errors_tp_slices_below_fit_rows);
#         rejected_slice_width_half: fitted, not used (it took the MAPE down by less than 2 points)
#   moe_fraction_of_peak: fused MoE (balanced routing, no TP/EP) achieved FLOP/s / peak, by tokens
#         per expert (report only)
# errors: predicted vs measured on the fitted rows: MAPE, median signed error, max |error| (percent).
"""


def clean(obj):
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items() if v is not None and not str(k).startswith("_")}
    if isinstance(obj, float):
        return float(f"{obj:.4g}") if np.isfinite(obj) else None
    return obj


def run_system(root: Path, version: str, system: str, engine: str, families: set, quant_kernel: bool) -> dict | None:
    dev = device(system)
    res, sources = {"system": system, "engine": engine, "generation": dev.generation}, []

    def table(family, name, eng=engine):
        p = newest(root, system, family, eng, name)
        if p:
            sources.append(rel(root, p))
        return p

    if "gemm" in families and (p := table("gemm", "gemm_perf.parquet")):
        res["gemm"] = fit_gemm(dev, p, quant_kernel, engine)
    if "attention" in families:
        att = {}
        if p := table("attention", "context_attention_perf.parquet"):
            att = res["attention_prefill"] = fit_context(dev, p)
        if p := table("attention", "generation_attention_perf.parquet"):
            res["attention_decode"] = fit_generation(dev, p, att)
    if "comm" in families:
        if p := table("comm", "nccl_perf.parquet", "nccl"):
            res["nccl"] = fit_nccl(dev, p)
        if p := table("comm", "custom_allreduce_perf.parquet"):
            res["engine_all_reduce"] = fit_custom_allreduce(dev, p)
    if "moe" in families and (p := table("moe", "moe_perf.parquet")):
        res["moe_fraction_of_peak"] = moe_report(dev, p)
    if "moe" in families:
        moe, paths = moe_tables(root, system, engine)
        if len(moe):
            res["moe_gemm"] = fit_moe(dev, moe, res.get("gemm", {}))
            sources.extend(rel(root, q) for q in paths if rel(root, q) not in sources)
    if len(res) == 3:
        return None
    res["engine_version"] = sorted({s.split("/")[3] for s in sources if s.split("/")[2] == engine},
                                   key=_vkey)
    res["source"] = [f"{PACKAGE}=={version}"] + sources
    res["_dev"] = dev
    return res


def print_result(r: dict) -> None:
    print(f"\n=== {r['system']} / {r['engine']} ({', '.join(r['engine_version'])}; generation {r['generation']})")
    for dt, g in r.get("gemm", {}).items():
        print(f"  gemm {dt:<10} eff {g['gemm_efficiency']:.3f} k_half {g['gemm_k_half']:7.1f} "
              f"overhead {g['gemm_overhead_us']:+6.2f} us  mem_eff(M<=16) {g['implied_memory_efficiency']:.2f} "
              f"best {g['best_fraction_of_peak']:.2f}  | {fmt_err(g['errors'])}")
        for part in ("errors_m_le_64", "errors_m_gt_64"):
            if g.get(part):
                print(f"      {part[7:]:<10} {fmt_err(g[part])}")
    for k, a in r.get("attention_prefill", {}).items():
        print(f"  prefill {k:<14} eff {a['attention_efficiency']:.3f} d_half {a['attention_head_dim_half']:6.1f} "
              f"(eff@128 {a['efficiency_at_head_dim_128']:.3f}) isl>=1024 | {fmt_err(a['errors'])}")
        if a.get("errors_isl_128_to_1023"):
            print(f"      isl 128-1023 {fmt_err(a['errors_isl_128_to_1023'])}")
        w = a["with_kv_half"]
        print(f"      +kv_half: eff {w['attention_efficiency']:.3f} d_half {w['attention_head_dim_half']:6.1f} "
              f"kv_half {w['attention_kv_half']:7.1f} all isl>=128 | {fmt_err(w['errors'])}")
    for k, a in r.get("attention_decode", {}).items():
        print(f"  decode  {k:<14} mem_eff {a['decode_memory_efficiency']:.3f} "
              f"overhead {a['decode_overhead_us']:6.2f} us"
              f" per-seq {a['decode_per_sequence_us']:5.3f} us"
              f" | {fmt_err(a['errors'])}")
        if a.get("errors_kv_ge_256MiB"):
            print(f"      kv>=256MiB {fmt_err(a['errors_kv_ge_256MiB'])}")
    for name in ("nccl", "engine_all_reduce"):
        for k, c in r.get(name, {}).items():
            nv = c.get("bus_bw_above_link_rate_from_bytes")
            print(f"  {name:<17} {k:<17} lat {c['latency_us']:6.1f} us bw {c['bus_bandwidth_gb_s']:7.1f} GB/s "
                  f"(max {c['max_measured_bus_bandwidth_gb_s']:6.1f}){' NVLS>' + str(nv) if nv else ''} "
                  f"| {fmt_err(c['errors'])}")
    for dt, g in r.get("moe_gemm", {}).items():
        print(f"  moe_gemm {dt:<16} eff {g['gemm_efficiency']:.3f} ({g['shapes']} shapes) "
              f"op {g['op_overhead_us']:5.1f} us ({g['op_overhead_rows']} rows) fitted {fmt_err(g['errors_fitted'])} "
              f"| all {fmt_err(g['errors'])}")
        if "ep_efficiency" in g:
            print("      ep slices eff " + " ".join(f"ep{ep}:{v:.3f}" for ep, v in g["ep_efficiency"].items())
                  + f" | at ep1 eff {fmt_err(g['errors_ep_slices_at_ep1_efficiency'])}"
                  + f" -> {fmt_err(g['errors_ep_slices'])}")
        if "errors_tp_slices_at_full_width" in g:
            w = g.get("slice_width_half", g.get("rejected_slice_width_half"))
            after = g.get("errors_tp_slices", g.get("rejected_errors_tp_slices"))
            print(f"      tp slices width_half {w:.0f}{'' if 'slice_width_half' in g else ' (rejected)'}"
                  f" | at full width {fmt_err(g['errors_tp_slices_at_full_width'])} -> {fmt_err(after)}")
            print("        median by tp: " + "  ".join(
                f"tp{size} {v['median_signed_pct_at_full_width']:+.0f}->{v['median_signed_pct']:+.0f}%"
                for size, v in g["errors_tp_slices_by_tp"].items()))
        if "errors_weight_bound" in g:
            rate = g.get("memory_efficiency", g.get("rejected_memory_efficiency"))
            print(f"      weight streaming mem_eff {rate:.3f}{'' if 'memory_efficiency' in g else ' (rejected)'}"
                  f" | {fmt_err(g['errors_weight_bound'])}")
        for part in [p for p in g if p.startswith("errors_tokens")]:
            print(f"      tokens/expert {part.split('_')[-1]:<9} {fmt_err(g[part])}")
    for dt, m in r.get("moe_fraction_of_peak", {}).items():
        print(f"  moe {dt:<14} " + "  ".join(f"{k.split('_')[-1]}: {v:.3f}" for k, v in m.items() if k != "peak_key"))


def write_yaml(r: dict, version: str) -> Path:
    dev = r.pop("_dev")
    out = REPO / "conf/efficiency/fitted" / f"{r['system']}_{r['engine']}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    e = dev.eff
    head = HEADER.format(package=PACKAGE, version=version, system=r["system"], engine=r["engine"],
                         tile_m=e["gemm_tile_m"], tile_n=e["gemm_tile_n"], split=e["gemm_split_k_min_depth"],
                         sms=dev.sms, generation=dev.generation)
    body = clean(dict(r, kept_from_generation={k: e[k] for k in (
        "memory_efficiency", "kernel_overhead_us", "gemm_tile_m", "gemm_tile_n", "gemm_split_k_min_depth")}))
    out.write_text(head + yaml.safe_dump(body, sort_keys=False, width=110))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aic-root", help="aiconfigurator_core package directory (default: the installed one)")
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--families", default="gemm,attention,comm,moe")
    ap.add_argument("--quant-kernel", action="store_true",
                    help="model the activation-quantize kernel of fp8/fp4 GEMMs explicitly (a check)")
    ap.add_argument("--write", action="store_true", help="write conf/efficiency/fitted/<system>_<engine>.yaml")
    args = ap.parse_args()
    root = aic_root(args.aic_root)
    version = package_version(root)
    print(f"{PACKAGE} {version} at {root}")
    families = set(args.families.split(","))
    for system in args.systems.split(","):
        for engine in args.engines.split(","):
            r = run_system(root, version, system, engine, families, args.quant_kernel)
            if r is None:
                continue
            print_result(r)
            if args.write:
                print(f"  wrote {write_yaml(r, version).relative_to(REPO)}")


if __name__ == "__main__":
    main()
