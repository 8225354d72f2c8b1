"""ServingProfile: what a serving stack does that is neither model nor hardware (``conf/serving/``).

A profile names the software it describes (and its version), how it batches, whether it overlaps
tensor-parallel collectives with compute, how it bounds prefill memory, how much device memory it
keeps for itself, and which elementwise kernels it launches per layer (``kernels``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from mantile.specs._load import doc
from mantile.specs.errors import SpecError
from mantile.specs.stack import KernelStack

BATCHING = ("static", "continuous")
KV_DEFAULTS = ("dtype", "bf16", "fp8_if_quantized")


@dataclass(frozen=True)
class Scheduler:
    """How an engine forms its running batch (0 = no such limit)."""

    max_num_seqs: int = field(default=0, metadata=doc("running-sequence cap (vLLM max_num_seqs, TRT-LLM "
                                                          "max_batch_size, SGLang max_running_requests)"))
    spec_max_num_seqs: int = field(default=0, metadata=doc(
        "running-sequence cap while a draft model, EAGLE head or MTP layer speculates (SGLang resets "
        "max_running_requests to 48 for them); 0 = max_num_seqs"))
    max_num_batched_tokens: int = field(default=0, metadata=doc(
        "token budget of one step, decode and prefill tokens together (vLLM max_num_batched_tokens, "
        "TRT-LLM max_num_tokens, SGLang chunked_prefill_size); long prompts are chunked to fit"))
    kv_cache_memory_fraction: float = field(default=0.0, metadata=doc(
        "fraction of device memory the engine may fill (weights, activations, KV cache); 0 = "
        "1 - memory_reserve_fraction"))
    kv_reserve: str = field(default="mean", metadata=doc(
        "KV blocks a running sequence holds: 'mean' (paged, grows with the sequence: input + output/2) or "
        "'full' (reserved for input + output up front, TRT-LLM's GUARANTEED_NO_EVICT)"))
    host_step_us: float = field(default=0.0, metadata=doc(
        "host time per step not overlapped with the GPU (scheduling, sampling, launch), microseconds"))
    host_per_sequence_us: float = field(default=0.0, metadata=doc(
        "host time per running sequence per step, microseconds"))
    host_overlap: bool = field(default=False, metadata=doc(
        "the per-sequence host work of step n+1 runs while the GPU computes step n (TRT-LLM's and SGLang's "
        "overlap schedulers): it shows only where it is longer than the GPU step"))

    def wall_s(self, gpu_s: object, seqs: object) -> np.ndarray:
        """Wall time of a step whose kernels take ``gpu_s`` with ``seqs`` running sequences: the fixed host
        time is exposed (launch, synchronisation); the per-sequence host work (scheduling, sampler
        bookkeeping, responses) adds to the GPU time, or, with ``host_overlap``, runs during the previous
        step and binds only when it is the longer of the two (a host-bound engine at large batches)."""
        fixed = self.host_step_us * 1e-6
        per_seq = self.host_per_sequence_us * 1e-6 * np.asarray(seqs, dtype=float)
        gpu = np.asarray(gpu_s, dtype=float)
        if self.host_overlap:
            return fixed + np.maximum(gpu, per_seq)
        return gpu + fixed + per_seq

    def __post_init__(self) -> None:
        if self.kv_reserve not in ("mean", "full"):
            raise SpecError("?", "scheduler.kv_reserve", self.kv_reserve, ["mean", "full"])
        for name in ("max_num_seqs", "spec_max_num_seqs", "max_num_batched_tokens", "host_step_us",
                     "host_per_sequence_us"):
            if getattr(self, name) < 0:
                raise SpecError("?", f"scheduler.{name}", getattr(self, name), "0 (no limit) or a positive number")
        if not 0 <= self.kv_cache_memory_fraction <= 1:
            raise SpecError("?", "scheduler.kv_cache_memory_fraction", self.kv_cache_memory_fraction,
                            "a fraction in [0, 1] (0: 1 - memory_reserve_fraction)")


@dataclass(frozen=True)
class DeviceRule:
    """Scheduler defaults an engine picks by the device it runs on (vLLM's batch defaults by GPU memory and
    name, SGLang's chunked-prefill size by GPU memory). A rule matches a device whose name contains
    ``name_contains`` (case-insensitive) or, with no name, whose memory is in [``memory_at_least_gib``,
    ``memory_below_gib``); the first matching rule of a profile wins."""

    name_contains: str = field(default="", metadata=doc("substring of the device name (case-insensitive)"))
    memory_at_least_gib: float = field(default=0.0, metadata=doc("lowest device memory the rule covers, GiB"))
    memory_below_gib: float = field(default=0.0, metadata=doc("device memory the rule stops at, GiB (0: none)"))
    max_num_seqs: int = field(default=0, metadata=doc("running-sequence cap on such a device (0: the profile's)"))
    max_num_batched_tokens: int = field(default=0, metadata=doc(
        "token budget of a step (and the prefill chunk) on such a device (0: the profile's)"))

    def matches(self, name: str, memory_gib: float) -> bool:
        if self.name_contains:
            return self.name_contains.lower() in name.lower()
        return memory_gib >= self.memory_at_least_gib and (not self.memory_below_gib
                                                             or memory_gib < self.memory_below_gib)


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
    scheduler: Scheduler = field(default_factory=Scheduler, metadata=doc("running-batch caps and host time"))
    kernel_tables: str = field(default="", metadata=doc(
        "engine whose measured kernel tables set the efficiency constants (conf/efficiency/fitted/"
        "<system>_<engine>.yaml; vllm | sglang | trtllm); empty = the generation's profile"))
    kv_dtype_default: str = field(default="dtype", metadata=doc(
        f"KV-cache format when kv_dtype is not given, one of {KV_DEFAULTS}: the model dtype; 16-bit; or "
        "FP8 for an 8- or 4-bit checkpoint (TensorRT-LLM's FP8/NVFP4 recipes)"))
    draft_model: str = field(default="", metadata=doc(
        "catalog model id of the draft model for speculative decoding with spec_method=draft (empty: none)"))
    keep_16bit_embedding: bool = field(default=False, metadata=doc(
        "embedding and LM head stay 16-bit in an 8- or 4-bit checkpoint (as FP8/NVFP4 checkpoints ship)"))
    device_rules: tuple[DeviceRule, ...] = field(default=(), metadata=doc(
        "scheduler defaults the engine picks by device (first match wins; see DeviceRule)"))

    def for_device(self, name: str, memory_gib: float) -> ServingProfile:
        """This profile as the engine configures itself on a device (its first matching ``device_rules``
        entry replaces the running-sequence cap and the step's token budget, which is also the prefill
        chunk); the profile itself when no rule matches."""
        rule = next((r for r in self.device_rules if r.matches(name, memory_gib)), None)
        if rule is None:
            return self
        sched, chunk = self.scheduler, self.max_prefill_tokens
        if rule.max_num_seqs:
            sched = dataclasses.replace(sched, max_num_seqs=rule.max_num_seqs)
        if rule.max_num_batched_tokens:
            sched = dataclasses.replace(sched, max_num_batched_tokens=rule.max_num_batched_tokens)
            chunk = rule.max_num_batched_tokens
        return dataclasses.replace(self, scheduler=sched, max_prefill_tokens=chunk)

    def kv_dtype_for(self, dtype: str) -> str:
        """The KV-cache format this profile uses for a model in ``dtype`` when none is given."""
        if self.kv_dtype_default == "dtype" or dtype in ("fp32", "fp16", "bf16", "tf32"):
            return dtype
        if self.kv_dtype_default == "bf16":
            return "bf16"
        return "fp8"

    def embedding_dtype_for(self, dtype: str) -> str:
        """The format of the embedding and LM head in a ``dtype`` checkpoint."""
        if self.keep_16bit_embedding and dtype not in ("fp32", "fp16", "bf16", "tf32"):
            return "bf16"
        return dtype

    def __post_init__(self) -> None:
        if self.kv_dtype_default not in KV_DEFAULTS:
            raise SpecError("?", "kv_dtype_default", self.kv_dtype_default, KV_DEFAULTS)
        if self.batching not in BATCHING:
            raise SpecError("?", "batching", self.batching, BATCHING)
        if not 0 <= self.memory_reserve_fraction < 1:
            raise SpecError("?", "memory_reserve_fraction", self.memory_reserve_fraction, "a fraction in [0, 1)")
        if self.max_prefill_tokens < 1:
            raise SpecError("?", "max_prefill_tokens", self.max_prefill_tokens, "a positive number of tokens")
