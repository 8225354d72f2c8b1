"""Number formats: bytes per stored element, the peak-FLOP/s key each one computes at, activations.

Block-scaled 4-bit formats carry their scales in the bytes (the OCP Microscaling spec v1.0 and
NVIDIA's NVFP4 description, developer.nvidia.com/blog/introducing-nvfp4-for-efficient-and-accurate-
low-precision-inference):
- ``fp4`` is NVFP4: 4-bit E2M1 values plus one FP8 (E4M3) scale per 16 values: 0.5 + 1/16 = 0.5625 B;
- ``mxfp4`` (MXFP4, GPT-OSS's experts): 4-bit values plus one 8-bit (E8M0) scale per 32: 0.53125 B;
- ``fp6`` packs four values in three bytes (scales not counted).
Both 4-bit formats compute at the device's ``fp4`` peak.

``w4a16`` is weight-only 4-bit: MXFP4-sized weights (0.53125 B; AWQ/GPTQ int4 with a 16-bit scale per
128 values is 0.516 B) dequantized to bf16 inside the GEMM's main loop (Marlin/Machete-style kernels, how
vLLM and SGLang serve MXFP4 or int4 checkpoints on GPUs without FP4 tensor cores): weight bytes of a 4-bit
format, math at the bf16 peak, no activation-quantize kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Bytes per stored element (scales included for the block-scaled formats).
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp6": 0.75,
    "fp4": 0.5 + 1 / 16, "mxfp4": 0.5 + 1 / 32, "w4a16": 0.5 + 1 / 32,
}
DTYPES: tuple[str, ...] = tuple(BYTES_PER_ELEMENT)
#: The peak-FLOP/s key of a dtype in a hardware file's ``peak_tflops`` (itself unless listed).
PEAK_KEY: dict[str, str] = {d: d for d in DTYPES} | {"mxfp4": "fp4", "w4a16": "bf16"}
#: 1.0 where a GEMM in the dtype first casts its 16-bit input to the weight format (8- and 4-bit math)
QUANTIZES_INPUT: dict[str, float] = {d: float(BYTES_PER_ELEMENT[d] < 2.0 and PEAK_KEY[d] not in ("bf16", "fp16"))
                                     for d in DTYPES}
#: Activations of quantized models stay in 16 bits; weights and math use the dtype.
ACTIVATION_BYTES: dict[str, float] = {d: max(b, 2.0) for d, b in BYTES_PER_ELEMENT.items()}


def attention_dtype(dtype: str, kv_dtype: str) -> str:
    """The format flash attention computes in: FP8 when both the model and its KV cache are 8-bit or
    narrower and the cache is FP8 (FlashAttention-3 / TensorRT-LLM FP8 attention); never FP4 (no FP4
    attention kernels); otherwise the 16-bit activation format (fp32 models: fp32)."""
    if kv_dtype == "fp8" and BYTES_PER_ELEMENT[dtype] <= 1.0:
        return "fp8"
    return dtype if dtype in ("fp32", "fp16", "tf32") else "bf16"

#: The key of block-scaled FP8 GEMM constants (one scale per 128 x 128 weight block and per-token-group
#: activation scales: DeepSeek-V3, Kimi K2) in ``EfficiencyProfile.gemm_dtypes``, beside the per-tensor
#: ``fp8`` ones; ``costs.step.machine`` uses them for fp8 layers of a block-scaled checkpoint
#: (``ModelSpec.weight_block_size``).
BLOCK_SCALED_FP8 = "fp8_block"

#: The dtype of the modules a checkpoint's quantization leaves out (``ModelSpec.quantization_excludes``):
#: the checkpoints' own torch_dtype (NVIDIA's NVFP4 DeepSeek-R1 releases: bfloat16).
UNQUANTIZED = "bf16"


def unquantized_bytes(w_bytes: Any) -> Any:
    """Bytes per weight of a module kept out of the layer's quantization: bf16's, or the layer's own where
    that is wider (fp32)."""
    return np.maximum(w_bytes, BYTES_PER_ELEMENT[UNQUANTIZED])
