"""ServingProfile: what a serving stack does that is neither model nor hardware (``conf/serving/``).

A profile names the software it describes (and its version), how it batches, whether it overlaps
tensor-parallel collectives with compute, how it bounds prefill memory, how much device memory it
keeps for itself, and which elementwise kernels it launches per layer (``kernels``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mantile.specs._load import doc
from mantile.specs.errors import SpecError
from mantile.specs.stack import KernelStack

BATCHING = ("static", "continuous")


@dataclass(frozen=True)
class ServingProfile:
    name: str = field(metadata=doc("profile id (the file name in conf/serving/)"))
    description: str = field(metadata=doc("what software these numbers describe"))
    version: str = field(metadata=doc("the software version the profile describes"))
    kernels: KernelStack = field(metadata=doc("kernel launches per layer (fusions)"))
    batching: str = field(default="static", metadata=doc(f"one of {BATCHING}"))
    comm_overlap: bool = field(default=False, metadata=doc("hide TP collectives behind the layer's compute"))
    max_prefill_tokens: int = field(default=16384, metadata=doc("prefill chunk: bounds the activation peak"))
    memory_reserve_fraction: float = field(default=0.05, metadata=doc("device memory kept by the runtime"))
    source: tuple[str, ...] = field(default=(), metadata=doc("citations a contributor can open"))

    def __post_init__(self) -> None:
        if self.batching not in BATCHING:
            raise SpecError("?", "batching", self.batching, BATCHING)
        if not 0 <= self.memory_reserve_fraction < 1:
            raise SpecError("?", "memory_reserve_fraction", self.memory_reserve_fraction, "a fraction in [0, 1)")
        if self.max_prefill_tokens < 1:
            raise SpecError("?", "max_prefill_tokens", self.max_prefill_tokens, "a positive number of tokens")
