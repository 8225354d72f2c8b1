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
KV_FRACTION_OF = ("total", "free")
SEQ_RULES = ("", "trtllm_bench")


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
        "1 - memory_reserve_fraction; with kv_fraction_of 'free', the fraction of what the weights and the "
        "activations leave that the KV cache takes"))
    kv_fraction_of: str = field(default="total", metadata=doc(
        f"what kv_cache_memory_fraction is a fraction of, one of {KV_FRACTION_OF}: 'total' device memory "
        "(vLLM gpu_memory_utilization) or the 'free' memory after the weights and activations are in place "
        "(TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction)"))
    max_num_seqs_rule: str = field(default="", metadata=doc(
        f"how the engine's launcher sets the running-sequence cap, one of {SEQ_RULES}: '' (max_num_seqs as "
        "given) or 'trtllm_bench' (trtllm-bench's calc_engine_setting: the requests its own KV-cache estimate "
        "holds at input + output tokens, rounded up; at most max_num_seqs; serving/scheduler.py)"))
    caps_per_attention_rank: bool = field(default=False, metadata=doc(
        "max_num_seqs and max_num_batched_tokens bind each attention-DP rank, which runs its own executor "
        "(TensorRT-LLM's max_batch_size and max_num_tokens), not the whole replica"))
    seqs_per_attention_rank: bool = field(default=False, metadata=doc(
        "max_num_seqs binds each attention-DP rank (its own scheduler and request pool), while the step's token "
        "budget stays the replica's (SGLang with --enable-dp-attention: each DP rank's scheduler holds up to "
        "its own request pool, and chunked_prefill_size is divided among the ranks)"))
    kv_reserve: str = field(default="mean", metadata=doc(
        "KV blocks a running sequence holds: 'mean' (paged, grows with the sequence: input + output/2) or "
        "'full' (reserved for input + output up front, TRT-LLM's GUARANTEED_NO_EVICT)"))
    sliding_kv_full: bool = field(default=False, metadata=doc(
        "the KV capacity counts a sliding-window layer like a full-attention layer (TensorRT-LLM gives each "
        "window's block pool an equal share of the KV memory, so its full layers' pool holds what all-full "
        "layers would: conf/serving/trtllm.yaml); False: a window layer takes at most its window (vLLM's "
        "sliding-window manager frees the rest)"))
    host_step_us: float = field(default=0.0, metadata=doc(
        "host time per step not overlapped with the GPU (scheduling, sampling, launch), microseconds"))
    host_per_sequence_us: float = field(default=0.0, metadata=doc(
        "host time per running sequence per step, microseconds"))
    host_overlap: bool = field(default=False, metadata=doc(
        "the per-sequence host work of step n+1 runs while the GPU computes step n (TRT-LLM's and SGLang's "
        "overlap schedulers): it shows only where it is longer than the GPU step"))
    eager_launch_us: float = field(default=0.0, metadata=doc(
        "host time per kernel launch of a forward pass that runs outside CUDA graphs (PyTorch's eager dispatch: "
        "Python, the dispatcher, the launch), microseconds; such a pass takes at least its launches x this, "
        "as the host issues the kernels no faster (0: every pass in CUDA graphs, or the host never binds)"))
    prefill_outside_graphs: bool = field(default=False, metadata=doc(
        "a step that carries prompt tokens runs outside CUDA graphs (SGLang before 0.5.10 captures decode "
        "batches only); decode steps above the engine's largest CUDA-graph batch (memory_reserve.graph_batch) "
        "run outside them in any case"))

    def executors(self, attention_dp: object) -> np.ndarray:
        """How many times a replica holds the profile's caps: its attention-DP ranks where each rank's executor
        applies them (``caps_per_attention_rank``), else 1."""
        return np.asarray(attention_dp, dtype=float) if self.caps_per_attention_rank else np.asarray(1.0)

    def seq_executors(self, attention_dp: object) -> np.ndarray:
        """How many times a replica holds max_num_seqs: its attention-DP ranks where each rank applies it
        (``caps_per_attention_rank`` or ``seqs_per_attention_rank``), else 1."""
        per_rank = self.caps_per_attention_rank or self.seqs_per_attention_rank
        return np.asarray(attention_dp, dtype=float) if per_rank else np.asarray(1.0)

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

    def eager_wall_s(self, wall_s: object, launches: object, prompt_tokens: object, seqs: object,
                     graph_batch: object) -> np.ndarray:
        """A step's wall time (``wall_s``) where its pass runs outside CUDA graphs: at least its kernel
        ``launches`` x ``eager_launch_us``, the host issuing an eager pass's kernels one by one (max, not sum:
        the host runs ahead while the GPU is the slower). Such a pass carries ``prompt_tokens`` where
        ``prefill_outside_graphs``, or decodes more ``seqs`` (a rank) than ``graph_batch``, the largest batch
        the engine captures (``MemoryReserve.graph_batch_at``; 0: every decode batch)."""
        wall = np.asarray(wall_s, dtype=float)
        if not self.eager_launch_us:
            return wall
        graph = np.asarray(graph_batch, dtype=float)
        above_graphs = (graph > 0) & (np.asarray(seqs) > graph)
        eager = (np.asarray(prompt_tokens) > 0) & self.prefill_outside_graphs | above_graphs
        return np.asarray(np.where(eager, np.maximum(wall, np.asarray(launches) * (self.eager_launch_us * 1e-6)),
                                   wall))

    def __post_init__(self) -> None:
        if self.kv_reserve not in ("mean", "full"):
            raise SpecError("?", "scheduler.kv_reserve", self.kv_reserve, ["mean", "full"])
        for name in ("max_num_seqs", "spec_max_num_seqs", "max_num_batched_tokens", "host_step_us",
                     "host_per_sequence_us", "eager_launch_us"):
            if getattr(self, name) < 0:
                raise SpecError("?", f"scheduler.{name}", getattr(self, name), "0 (no limit) or a positive number")
        if self.max_num_seqs_rule not in SEQ_RULES:
            raise SpecError("?", "scheduler.max_num_seqs_rule", self.max_num_seqs_rule, SEQ_RULES)
        if self.kv_fraction_of not in KV_FRACTION_OF:
            raise SpecError("?", "scheduler.kv_fraction_of", self.kv_fraction_of, KV_FRACTION_OF)
        if not 0 <= self.kv_cache_memory_fraction <= 1:
            raise SpecError("?", "scheduler.kv_cache_memory_fraction", self.kv_cache_memory_fraction,
                            "a fraction in [0, 1] (0: 1 - memory_reserve_fraction)")


@dataclass(frozen=True)
class MemoryReserve:
    """Device memory an engine keeps out of its weights-and-KV pool, in MiB, as the engine computes it at
    start-up (SGLang 0.5.3-0.5.9 ``server_args._handle_gpu_memory_settings`` with no --mem-fraction-static):

        reserved = fixed + per_prefill_token x max(chunk, min_prefill_tokens) + per_graph_batch x G
                   + per_plan_device x tp x pp
                   [+ G x attention_dp x (dp_attention_per_graph_batch + dp_attention_large_per_graph_batch
                      when G > dp_attention_large_graph_batch), with data-parallel attention]
        reserved = max(reserved, floor) on a device above floor_above_gib;  + speculative (EAGLE, MTP) or
                   + draft_model (a separate draft model; n-gram lookup adds nothing)
        fraction = round((memory - reserved) / memory, 3)

    G is the largest CUDA-graph batch (``graph_batch``, ``graph_batch_tp4`` at tp >= 4; device rules
    change both). The reserve holds the activations and CUDA graphs, so the KV pool is what the weights
    leave of the fraction (Mantile's own activation estimate is not taken off again). Inactive (the
    profile's memory fractions apply) when ``fixed_mib`` is 0."""

    fixed_mib: float = field(default=0.0, metadata=doc("constant reserve (attention-backend metadata), MiB"))
    per_prefill_token_mib: float = field(default=0.0, metadata=doc(
        "reserve per token of the prefill chunk (activations of a large prefill), MiB"))
    min_prefill_tokens: int = field(default=0, metadata=doc("smallest chunk the activation reserve assumes"))
    per_graph_batch_mib: float = field(default=0.0, metadata=doc(
        "reserve per sequence of the largest CUDA-graph batch, MiB"))
    graph_batch: int = field(default=0, metadata=doc("largest CUDA-graph batch at tp < 4 (cuda_graph_max_bs)"))
    graph_batch_tp4: int = field(default=0, metadata=doc("largest CUDA-graph batch at tp >= 4"))
    per_plan_device_mib: float = field(default=0.0, metadata=doc("reserve per device of tp x pp, MiB"))
    dp_attention_per_graph_batch_mib: float = field(default=0.0, metadata=doc(
        "with data-parallel attention: reserve per graph sequence per attention-DP rank, MiB"))
    dp_attention_large_graph_batch: int = field(default=0, metadata=doc(
        "graph batch above which data-parallel attention reserves dp_attention_large_per_graph_batch_mib more"))
    dp_attention_large_per_graph_batch_mib: float = field(default=0.0, metadata=doc(
        "extra reserve per graph sequence per attention-DP rank above that batch, MiB"))
    floor_mib: float = field(default=0.0, metadata=doc("smallest reserve on a device above floor_above_gib, MiB"))
    floor_above_gib: float = field(default=0.0, metadata=doc("device memory above which floor_mib applies, GiB"))
    speculative_mib: float = field(default=0.0, metadata=doc("extra reserve with an EAGLE head or MTP layers, MiB"))
    draft_model_mib: float = field(default=0.0, metadata=doc("extra reserve with a separate draft model, MiB"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise SpecError("?", f.name, getattr(self, f.name), "a number >= 0")

    @property
    def active(self) -> bool:
        return self.fixed_mib > 0

    def graph_batch_at(self, tp: object) -> np.ndarray:
        """The largest CUDA-graph batch per point (``graph_batch``, ``graph_batch_tp4`` at tp >= 4; 0 where the
        profile states none)."""
        return np.where(np.asarray(tp, dtype=float) >= 4, float(self.graph_batch_tp4), float(self.graph_batch))

    def fraction(self, memory_gib: float, chunk: float, tp: object, pp: object, attention_dp: object,
                 dp_attention: object, drafts_model: object, speculates: object) -> np.ndarray:
        """The fraction of device memory left to weights and KV cache, per point (see the class)."""
        tp_ = np.asarray(tp, dtype=float)
        graph = self.graph_batch_at(tp_)
        reserved = (self.fixed_mib + self.per_prefill_token_mib * max(chunk, self.min_prefill_tokens)
                    + self.per_graph_batch_mib * graph + self.per_plan_device_mib * tp_ * np.asarray(pp, dtype=float))
        large = graph > self.dp_attention_large_graph_batch if self.dp_attention_large_graph_batch else False
        per_rank = self.dp_attention_per_graph_batch_mib + np.where(large, self.dp_attention_large_per_graph_batch_mib,
                                                                     0.0)
        reserved = reserved + np.where(np.asarray(dp_attention) > 0, graph * np.asarray(attention_dp) * per_rank, 0.0)
        memory_mib = memory_gib * 1024.0
        if self.floor_mib and memory_gib > self.floor_above_gib:
            reserved = np.maximum(reserved, self.floor_mib)
        reserved = reserved + np.where(np.asarray(drafts_model, dtype=bool), self.draft_model_mib,
                                       np.where(np.asarray(speculates, dtype=bool), self.speculative_mib, 0.0))
        return np.round((memory_mib - reserved) / memory_mib, 3)


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
    graph_batch: int = field(default=0, metadata=doc(
        "largest CUDA-graph batch at tp < 4 on such a device (memory_reserve.graph_batch; 0: the profile's)"))
    graph_batch_tp4: int = field(default=0, metadata=doc(
        "largest CUDA-graph batch at tp >= 4 on such a device (memory_reserve.graph_batch_tp4; 0: the profile's)"))

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
    memory_reserve: MemoryReserve = field(default_factory=MemoryReserve, metadata=doc(
        "the engine's own reserve formula (MiB, by chunk, CUDA-graph batch and plan); when set it replaces "
        "memory_reserve_fraction and scheduler.kv_cache_memory_fraction (see MemoryReserve)"))

    def for_device(self, name: str, memory_gib: float) -> ServingProfile:
        """This profile as the engine configures itself on a device (its first matching ``device_rules``
        entry replaces the running-sequence cap, the step's token budget, which is also the prefill
        chunk, and the CUDA-graph batch of the memory reserve); the profile itself when no rule matches."""
        rule = next((r for r in self.device_rules if r.matches(name, memory_gib)), None)
        if rule is None:
            return self
        sched, chunk, reserve = self.scheduler, self.max_prefill_tokens, self.memory_reserve
        if rule.graph_batch:
            reserve = dataclasses.replace(reserve, graph_batch=rule.graph_batch)
        if rule.graph_batch_tp4:
            reserve = dataclasses.replace(reserve, graph_batch_tp4=rule.graph_batch_tp4)
        if rule.max_num_seqs:
            sched = dataclasses.replace(sched, max_num_seqs=rule.max_num_seqs)
        if rule.max_num_batched_tokens:
            sched = dataclasses.replace(sched, max_num_batched_tokens=rule.max_num_batched_tokens)
            chunk = rule.max_num_batched_tokens
        return dataclasses.replace(self, scheduler=sched, max_prefill_tokens=chunk, memory_reserve=reserve)

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
