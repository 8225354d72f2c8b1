"""Python front door: catalog listing, numpy arrays and ranges as sweep values, documented columns."""

from __future__ import annotations

import re

import numpy as np
import polars as pl

import mantile
from mantile.specs import ids


def test_catalog_lists_ids_with_a_summary() -> None:
    models, hardware = mantile.models(), mantile.hardware()
    assert list(models) == ids("model") and "llama_3.1_8b" in models
    assert list(hardware) == ids("hardware") and "nvidia_h100_80gb" in hardware
    # Llama 3.1 8B: 32 layers, 32 query heads, 8 KV heads (its config.json)
    assert "32 layers, 32 heads (8 KV)" in models.summary["llama_3.1_8b"]
    assert "8 x NVIDIA H100" in hardware.summary["nvidia_h100_80gb"]
    assert repr(models).splitlines()[0].startswith(ids("model")[0])


def test_numpy_arrays_and_ranges_are_lists_of_values() -> None:
    common = dict(model="tinyllama_1.1b", hardware="nvidia_h100_80gb", input_seq=512, output_seq=64)
    # range(1, 257, 64) and np.arange(1, 257, 64) are both 1, 65, 129, 193; np.int64 tp is one value
    a = mantile.sweep(batch_size=range(1, 257, 64), tp=np.int64(1), **common)
    b = mantile.sweep(batch_size=np.arange(1, 257, 64), tp=np.array([1]), **common)
    assert a["batch_size"].to_list() == b["batch_size"].to_list() == [1, 65, 129, 193]
    assert a.select(pl.exclude("reason")).equals(b.select(pl.exclude("reason")))


def test_help_of_sweep_lists_every_returned_column() -> None:
    doc = mantile.sweep.__doc__ or ""
    df = mantile.sweep(model="tinyllama_1.1b", hardware="nvidia_h100_80gb", batch_size=1, input_seq=64,
                       output_seq=8)
    named = set(re.findall(r"[a-z][a-z0-9_]+", doc))
    missing = [c for c in df.columns if c not in named]
    assert not missing, missing
