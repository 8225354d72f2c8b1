"""Launch commands for a recommended deployment, per engine, with the engines' own flag names.

Flags, as each engine documents them (checked against its documentation):
- vLLM (docs.vllm.ai, "Engine Arguments" and "Distributed serving"): ``vllm serve MODEL
  --tensor-parallel-size N --pipeline-parallel-size N --data-parallel-size N``, ``--enable-expert-parallel``
  (MoE experts spread over the tp x dp devices), ``--kv-cache-dtype fp8``, ``--quantization fp8``;
  disaggregated: ``--kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'``
  (docs.vllm.ai, "Disaggregated Prefilling", NixlConnector).
- SGLang (docs.sglang.io, "Server Arguments"): ``python -m sglang.launch_server --model-path MODEL
  --tp N --dp N --ep-size N --enable-dp-attention --pp-size N --kv-cache-dtype fp8_e4m3
  --quantization fp8``; disaggregated: ``--disaggregation-mode prefill|decode`` (docs.sglang.io,
  "PD Disaggregation").
- TensorRT-LLM (nvidia.github.io/TensorRT-LLM, "trtllm-serve"): ``trtllm-serve MODEL --backend pytorch
  --tp_size N --pp_size N --ep_size N``; attention DP is the LLM API option ``enable_attention_dp: true``
  given in a YAML file with ``--extra_llm_api_options``; a disaggregated deployment is one context and one
  generation server per instance tied together by ``trtllm-serve disaggregated -c config.yaml``.

A replica count above 1 is N copies of the command (or the engine's data-parallel flag for vLLM and
SGLang), behind a router; a disaggregated deployment is P prefill and D decode commands.
"""

from __future__ import annotations

import re
from typing import Any

from mantile.specs.catalog import conf_dir
from mantile.specs.model import ModelSpec

QUANTIZED = ("fp8", "fp4", "int8", "int4", "mxfp4")


def hf_id(model_id: str) -> str:
    """The HuggingFace repository a catalog model file cites (``huggingface.co/org/name``), else the id."""
    path = conf_dir() / "model" / f"{model_id}.yaml"
    text = path.read_text() if path.exists() else ""
    m = re.search(r"huggingface\.co/([\w.-]+/[\w.-]+)", text)
    return m.group(1) if m else model_id


def _vllm(model: str, plan: dict[str, Any], dp: int, moe: bool, role: str | None) -> str:
    parts = [f"vllm serve {model}", f"--tensor-parallel-size {plan['tp'] if not plan['dp_attention'] else 1}"]
    if plan["pp"] > 1:
        parts.append(f"--pipeline-parallel-size {plan['pp']}")
    data = dp * (plan["tp"] if plan["dp_attention"] else 1)
    if data > 1:
        parts.append(f"--data-parallel-size {data}")
    if moe and plan["ep"] > 1:
        parts.append("--enable-expert-parallel")
    if plan["dtype"] == "fp8":
        parts += ["--quantization fp8", "--kv-cache-dtype fp8"]
    if role:
        parts.append("--kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'")
    return " ".join(parts)


def _sglang(model: str, plan: dict[str, Any], dp: int, moe: bool, role: str | None) -> str:
    parts = [f"python -m sglang.launch_server --model-path {model}", f"--tp {plan['tp']}"]
    if plan["dp_attention"]:
        parts += [f"--dp {plan['tp']}", "--enable-dp-attention"]
    elif dp > 1:
        parts.append(f"--dp {dp}")
    if moe and plan["ep"] > 1:
        parts.append(f"--ep-size {plan['ep']}")
    if plan["pp"] > 1:
        parts.append(f"--pp-size {plan['pp']}")
    if plan["dtype"] == "fp8":
        parts += ["--quantization fp8", "--kv-cache-dtype fp8_e4m3"]
    if role:
        parts.append(f"--disaggregation-mode {role}")
    return " ".join(parts)


def _trtllm(model: str, plan: dict[str, Any], dp: int, moe: bool, role: str | None) -> str:
    parts = [f"trtllm-serve {model} --backend pytorch", f"--tp_size {plan['tp']}"]
    if plan["pp"] > 1:
        parts.append(f"--pp_size {plan['pp']}")
    if moe and plan["ep"] > 1:
        parts.append(f"--ep_size {plan['ep']}")
    if plan["dp_attention"]:
        parts.append("--extra_llm_api_options attention_dp.yaml  # enable_attention_dp: true")
    return " ".join(parts)


ENGINE_COMMANDS = {"vllm": _vllm, "sglang": _sglang, "trtllm": _trtllm, "trtllm_bench": _trtllm}


def launch_commands(model: ModelSpec, model_id: str, row: dict[str, Any]) -> list[str]:
    """Commands that start the deployment of one recommendation row (``analysis.recommend``)."""
    make = ENGINE_COMMANDS.get(str(row["serving"]))
    if make is None:
        return [f"# no launch command for serving profile {row['serving']!r}"]
    name = hf_id(model_id)
    plan = {k: row[k] for k in ("tp", "pp", "ep", "dp_attention", "dtype")}
    if row["mode"] == "aggregated":
        replicas = int(row["replicas"] or 1)
        if row["serving"] == "trtllm" and replicas > 1:
            return [f"# {replicas} replicas behind a router, each:", make(name, plan, 1, model.is_moe, None)]
        return [make(name, plan, replicas, model.is_moe, None)]
    dec = dict(plan, tp=row["decode_tp"], ep=row["decode_ep"], dp_attention=row["decode_dp_attention"])
    out = [f"# {row['prefill_instances']} prefill instance(s), each:", make(name, plan, 1, model.is_moe, "prefill"),
           f"# {row['decode_instances']} decode instance(s), each:", make(name, dec, 1, model.is_moe, "decode")]
    if row["serving"] == "trtllm":
        out.append("trtllm-serve disaggregated -c disagg_config.yaml  # lists the context and generation servers")
    return out


__all__ = ["QUANTIZED", "hf_id", "launch_commands"]
