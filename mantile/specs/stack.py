"""KernelStack: which kernels a software stack launches for the elementwise parts of a layer.

The GEMMs and the attention core are the same everywhere; what differs between PyTorch eager and a
serving engine (vLLM, TensorRT-LLM, SGLang) is how the small ops are fused. Each count here is a
number of kernel launches per decoder layer (each costs ``kernel_overhead_us``); each traffic factor
is HBM bytes moved per element of the tensor it acts on, in units of the activation size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mantile.specs._load import check_ranges, doc


@dataclass(frozen=True)
class KernelStack:
    norm_kernels: int = field(metadata=doc("kernels per RMSNorm/LayerNorm"))
    residual_kernels: int = field(metadata=doc("kernels per residual add (0 = fused into the norm)"))
    rope_kernels: int = field(metadata=doc("kernels to rotate q and k together"))
    rope_traffic: float = field(metadata=doc("elements moved per q/k element by RoPE (read+write)"))
    activation_kernels: int = field(metadata=doc("kernels for act(gate) * up (or act(up))"))
    activation_traffic: float = field(metadata=doc("elements moved per intermediate element by the activation"))
    kv_write_kernels_prefill: int = field(metadata=doc("kernels writing K/V into the cache, prefill"))
    kv_write_kernels_decode: int = field(metadata=doc("kernels writing K/V into the cache, decode"))
    attention_prefill_kernels: int = field(metadata=doc("kernels of the attention core, prefill"))
    attention_decode_kernels: int = field(metadata=doc("kernels of the attention core, decode (split-KV + combine)"))
    attention_output_copy: bool = field(metadata=doc("decode: attention output re-laid out before Wo"))
    quantize_kernels: int = field(default=1, metadata=doc(
        "kernels that cast one GEMM's 16-bit input to an 8- or 4-bit weight format (0 = fused into the "
        "previous kernel); used unless the efficiency profile's GEMM constants already include it"))

    def __post_init__(self) -> None:
        check_ranges(self, "non_negative", "norm_kernels", "residual_kernels", "rope_kernels", "rope_traffic",
                     "activation_kernels", "activation_traffic", "kv_write_kernels_prefill",
                     "kv_write_kernels_decode", "attention_prefill_kernels", "attention_decode_kernels")
