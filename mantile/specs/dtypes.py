"""Number formats: bytes per element and the peak-FLOP/s key each one computes at."""

from __future__ import annotations

#: Bytes per stored element. fp4 packs two values per byte, fp6 four values in three bytes (scales
#: ignored).
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp6": 0.75, "fp4": 0.5,
}
DTYPES: tuple[str, ...] = tuple(BYTES_PER_ELEMENT)
#: Activations of quantized models stay in 16 bits; weights and math use the dtype.
ACTIVATION_BYTES: dict[str, float] = {d: max(b, 2.0) for d, b in BYTES_PER_ELEMENT.items()}
