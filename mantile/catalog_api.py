"""``mantile.models()`` and ``mantile.hardware()``: the catalog ids, each with a one-line summary.

Both return a ``CatalogIds``: a plain list of ids (what ``estimate``/``sweep`` take, in file-name
order) whose ``summary`` maps each id to one line, and which prints as a small table::

    >>> mantile.models()
    llama_3.1_8b    Llama 3.1 8B: 8.0B params, 32 layers, 32 heads (8 KV), context 131072
    ...
    >>> "llama_3.1_8b" in mantile.models()
    True
"""

from __future__ import annotations

from mantile.costs.families import parameters
from mantile.specs import HardwareSpec, ModelSpec, ids, load_hardware, load_model


class CatalogIds(list[str]):
    """Catalog ids (a list of str) with a one-line ``summary`` per id."""

    def __init__(self, summary: dict[str, str]) -> None:
        super().__init__(summary)
        self.summary = summary

    def __repr__(self) -> str:
        width = max((len(k) for k in self), default=0)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.summary.items())


def _billions(n: float) -> str:
    return f"{n / 1e9:.1f}B"


def model_line(m: ModelSpec) -> str:
    count = parameters(m)
    moe = f", {m.num_local_experts} experts ({_billions(count.active)} active)" if m.is_moe else ""
    return (f"{m.name}: {_billions(count.total)} params{moe}, {m.num_hidden_layers} layers, "
            f"{m.num_attention_heads} heads ({m.num_key_value_heads} KV), context {m.max_position_embeddings}")


def hardware_line(hw: HardwareSpec) -> str:
    d = hw.device
    bf16 = d.peak_tflops.get("bf16")
    peak = f", {bf16:g} bf16 TFLOPS" if bf16 else ""
    return (f"{hw.num_devices} x {d.name}, {d.memory_gib:g} GiB, "
            f"{d.hbm_bandwidth_tb_per_s:g} TB/s{peak} per device")


def models() -> CatalogIds:
    """Model ids of ``conf/model/`` (the ``model=`` of ``estimate``, ``sweep`` and the CLI)."""
    return CatalogIds({i: model_line(load_model(i)) for i in ids("model")})


def hardware() -> CatalogIds:
    """Hardware ids of ``conf/hardware/`` (the ``hardware=`` of ``estimate``, ``sweep`` and the CLI)."""
    return CatalogIds({i: hardware_line(load_hardware(i)) for i in ids("hardware")})
