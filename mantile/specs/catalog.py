"""Find and load the YAML catalog under ``conf/``: models, hardware, efficiency profiles, serving profiles.

The catalog is plain files read with OmegaConf (no Hydra global state), cached per process, so the
Python API, the HTTP service and ``validate`` share it with the Hydra CLI. User catalogs
(``MANTILE_CATALOG=dir1:dir2``, each with ``model/`` and ``hardware/`` folders of the same YAML files)
add ids to every front door without editing the package; an id found in several places is taken from
the package's own ``conf/`` first, then the user catalogs in order (as Hydra's search path does). A
model id that is no catalog entry but a local HuggingFace config (a config.json, a model directory,
a hub id in the local hub cache) is imported by ``specs.hf``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from mantile.specs._load import build
from mantile.specs.dtypes import BLOCK_SCALED_FP8
from mantile.specs.errors import SpecError
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile


@functools.cache
def conf_dir() -> Path:
    """The config tree: ``mantile/conf`` inside an installed wheel, else the repo's ``conf/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"mantile config tree not found next to {here} (looked for conf/config.yaml)")


CATALOG_ENV = "MANTILE_CATALOG"


def user_catalogs() -> list[Path]:
    """The folders of ``MANTILE_CATALOG`` (``os.pathsep``-separated), in order."""
    return [Path(p).expanduser() for p in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if p.strip()]


def _roots() -> list[Path]:
    return [conf_dir(), *user_catalogs()]


def ids(group: str) -> list[str]:
    """Option ids of a config group (file names without .yaml) in every catalog, sorted."""
    return sorted({p.stem for root in _roots() for p in (root / group).glob("*.yaml") if not p.stem.startswith("_")})


def has(group: str, item: str) -> bool:
    """Whether a catalog holds ``group/item.yaml`` (without listing the whole group); cached per process
    and ``MANTILE_CATALOG`` value, like the loaded files themselves."""
    return _has(group, item, os.environ.get(CATALOG_ENV, ""))


@functools.cache
def _has(group: str, item: str, catalogs: str) -> bool:
    return any((root / group / f"{item}.yaml").is_file() for root in _roots())


def _where(path: Path) -> str:
    root = conf_dir().parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _path(group: str, item: str, field: str) -> Path:
    for root in _roots():
        path = root / group / f"{item}.yaml"
        if path.is_file():
            return path
    raise SpecError(f"{group} catalog", field, item, ids(group))


def _plain(data: Any) -> dict[str, Any]:
    """A mapping from a parsed YAML node or a plain dict (a list or scalar is left for ``build`` to reject)."""
    if OmegaConf.is_config(data):
        data = OmegaConf.to_container(data, resolve=True)
    return dict(data) if isinstance(data, dict) else data


def model_from_dict(data: Any, where: str) -> ModelSpec:
    return build(ModelSpec, _plain(data), where)


def hardware_from_dict(data: Any, where: str) -> HardwareSpec:
    return build(HardwareSpec, _plain(data), where)


@functools.cache
def load_model(model_id: str) -> ModelSpec:
    """A catalog model, or a local HuggingFace config (``specs.hf.config_path``)."""
    from mantile.specs import hf

    if model_id not in ids("model"):
        local = hf.config_path(model_id)
        if local is not None:
            return hf.load_config(local)
    path = _path("model", model_id, "model")
    return model_from_dict(OmegaConf.load(path), _where(path))


def load_with_defaults(group: str, item: str, field: str, seen: tuple[str, ...] = ()) -> Any:
    """A group option with its ``defaults:`` list applied the way Hydra does for options of the same
    group (``- base`` then ``- _self_``): later entries override earlier ones."""
    if item in seen:
        raise SpecError(f"conf/{group}", "defaults", item, f"no cycle (via {list(seen)})")
    data = OmegaConf.load(_path(group, item, field))
    if not isinstance(data, DictConfig):
        raise SpecError(f"conf/{group}/{item}.yaml", "file", type(data).__name__, "a YAML mapping")
    defaults = data.pop("defaults", None) if "defaults" in data else None
    if not defaults:
        return data
    merged: Any = OmegaConf.create()
    for entry in defaults:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, data)
        else:
            merged = OmegaConf.merge(merged, load_with_defaults(group, str(entry), "defaults", (*seen, item)))
    if "_self_" not in defaults:
        merged = OmegaConf.merge(merged, data)
    return merged


@functools.cache
def load_hardware(hardware_id: str) -> HardwareSpec:
    path = _path("hardware", hardware_id, "hardware")
    return hardware_from_dict(load_with_defaults("hardware", hardware_id, "hardware"), _where(path))


@functools.cache
def load_efficiency(generation: str) -> EfficiencyProfile:
    path = _path("efficiency", generation, "device.generation")
    return build(EfficiencyProfile, _plain(OmegaConf.load(path)), _where(path))


def serving_from_dict(data: Any, where: str) -> ServingProfile:
    return build(ServingProfile, _plain(data), where)


@functools.cache
def load_serving(serving_id: str) -> ServingProfile:
    path = _path("serving", serving_id, "serving")
    return serving_from_dict(load_with_defaults("serving", serving_id, "serving"), _where(path))


#: Kernel-table GEMM formats -> Mantile dtypes (nvfp4 tables also stand in for MXFP4 GEMMs).
TABLE_GEMM_DTYPES = {"bfloat16": ("bf16", "fp16"), "fp8": ("fp8", "int8"), "nvfp4": ("fp4", "mxfp4")}
#: Fused-MoE table formats -> Mantile dtypes, in order (a later table wins): FP8 MoE checkpoints
#: (DeepSeek-V3, Qwen3-FP8) are block-scaled, so fp8_block stands for fp8 where measured; MXFP4 experts
#: run W4A8 (MXFP4 x MXFP8) on Blackwell and W4A16 (Marlin/Triton) elsewhere.
TABLE_MOE_DTYPES = {"bfloat16": ("bf16", "fp16"), "fp8": ("fp8",), "fp8_block": ("fp8",), "nvfp4": ("fp4",),
                    "w4a8_mxfp4_mxfp8": ("mxfp4",), "w4a16_mxfp4": ("w4a16",)}


@functools.cache
def load_engine_efficiency(generation: str, kernel_tables: str, engine: str) -> EfficiencyProfile:
    """The generation's profile with the constants fitted to a serving engine's measured kernel tables
    (``conf/efficiency/fitted/<kernel_tables>_<engine>.yaml``, written by
    ``benchmarks/aiconfigurator/fit_kernels.py``): GEMM constants per dtype (their timings include the
    activation quantize), flash-attention prefill constants, the decode attention's cache-read rate and
    fixed cost, the engine's all-reduce by group size, and grouped (fused-MoE expert) GEMM constants per
    format. Without such a file: the generation's profile."""
    base = load_efficiency(generation)
    path = conf_dir() / "efficiency" / "fitted" / f"{kernel_tables}_{engine}.yaml"
    if not kernel_tables or not engine or not path.is_file():
        return base
    where = str(path.relative_to(conf_dir().parent))
    # plain data (no interpolation), read with libyaml's C loader: about 10x faster than OmegaConf.load on
    # these 10 kB files, which ``recommend`` reads for every hardware x engine pair
    with open(path) as f:
        fit = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    data = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    data["gemm_dtypes"] = {k: dataclasses.asdict(v) for k, v in base.gemm_dtypes.items()}
    data["moe_gemm_dtypes"] = {k: dataclasses.asdict(v) for k, v in base.moe_gemm_dtypes.items()}
    data["all_reduce_fits"] = {}
    gemm_keys = ("gemm_efficiency", "gemm_k_half", "gemm_overhead_us")
    for table_dtype, dtypes in TABLE_GEMM_DTYPES.items():
        g = (fit.get("gemm") or {}).get(table_dtype)
        if not g:
            continue
        for dtype in dtypes:
            data["gemm_dtypes"][dtype] = {k: g[k] for k in gemm_keys}
        if table_dtype == "bfloat16":
            data.update({k: g[k] for k in gemm_keys})
    block = (fit.get("gemm") or {}).get("fp8_block")
    if block:  # block-scaled FP8 GEMMs (DeepSeek-style checkpoints): step.machine picks them by the model
        data["gemm_dtypes"][BLOCK_SCALED_FP8] = {k: block[k] for k in gemm_keys}
    for moe_dtype, moe_targets in TABLE_MOE_DTYPES.items():
        mg = (fit.get("moe_gemm") or {}).get(moe_dtype)
        if mg:  # with the kernel's weight-streaming rate and the op's fixed cost where fitted (fit_kernels.py)
            moe_keys = (*gemm_keys, *(k for k in ("memory_efficiency", "op_overhead_us", "ep_efficiency",
                                                  "slice_width_half") if k in mg))
            data["moe_gemm_dtypes"].update({d: {k: mg[k] for k in moe_keys} for d in moe_targets})
    data["gemm_includes_quantize"] = True
    prefill = (fit.get("attention_prefill") or {}).get("bf16_kv_bf16")
    if prefill:
        data["attention_efficiency"] = min(float(prefill["attention_efficiency"]), 1.0)
        data["attention_head_dim_half"] = prefill["attention_head_dim_half"]
    decode = (fit.get("attention_decode") or {}).get("kv_bf16")
    if decode:
        data["attention_decode_memory_efficiency"] = min(float(decode["decode_memory_efficiency"]), 1.0)
        data["attention_decode_overhead_us"] = decode["decode_overhead_us"]
    for key, f in (fit.get("engine_all_reduce") or fit.get("nccl") or {}).items():
        if key.startswith("all_reduce_"):
            data["all_reduce_fits"][key.removeprefix("all_reduce_")] = {
                "latency_us": f["latency_us"], "bus_bandwidth_gb_s": f["bus_bandwidth_gb_s"]}
    data["name"] = f"{generation}+{kernel_tables}_{engine}"
    data["source"] = f"{base.source}; kernel constants from {where}"
    return build(EfficiencyProfile, data, where)
