"""Regenerate the golden results (tests/golden/golden.parquet) from the CURRENT code.

Run only when a change is meant to move numbers, and say which in the commit:
    python tests/golden/make_golden.py
The grid covers every catalog model and hardware system, every plan axis, both batching modes,
two serving profiles (kernel stacks) and several dtypes; ``test_golden.py`` checks every metric within 1e-9 relative.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl

import mantile

HERE = Path(__file__).resolve().parent
MODELS = ["tinyllama_1.1b", "llama_3.2_1b", "llama_3.1_8b", "qwen2.5_32b", "llama_3.3_70b", "llama2_70b",
          "mixtral_8x7b", "llama_3.1_405b"]
HARDWARE = ["nvidia_h100_80gb_x4", "nvidia_b200_180gb", "nvidia_nvl72_rack", "amd_mi300x"]
#: serving profile x batching mode
MODES = [("pytorch", "static"), ("pytorch", "continuous"), ("fused", "static")]
#: (label, keyword arguments of mantile.sweep) — each block crosses its lists.
BLOCKS = [
    ("plans", dict(tp=[1, 8], pp=[1, 2], dp=[1, 2], cp=[1, 2], batch_size=[1, 16], input_seq=[512, 4096],
                   output_seq=[64], dtype=["bf16", "fp8"])),
    ("seq_par", dict(tp=[4], sp=[1, 4], embedding_tp=[1, 4], batch_size=[8], input_seq=[1024], output_seq=[128],
                     dtype=["bf16"], kv_dtype=["bf16", "fp8"])),
    ("experts", dict(tp=[2, 8], ep=[1, 2], batch_size=[4, 64], input_seq=[2048], output_seq=[256],
                     dtype=["bf16", "fp4"])),
]


def frames(**opts: object) -> pl.DataFrame:
    out = []
    for (label, axes), (serving, batching) in itertools.product(BLOCKS, MODES):
        for hw in HARDWARE:
            df = mantile.sweep(MODELS, hw, serving=serving, batching=batching, **axes, **opts)  # type: ignore[arg-type]
            out.append(df.with_columns(pl.lit(label).alias("block"), pl.lit(batching).alias("batching"),
                                       pl.col(pl.Categorical, pl.Enum).cast(pl.String)))
    return pl.concat(out, how="diagonal_relaxed")


if __name__ == "__main__":
    df = frames()
    df.write_parquet(HERE / "golden.parquet", compression="zstd")
    print(f"{df.height} rows, {df.width} columns -> {HERE / 'golden.parquet'}")
