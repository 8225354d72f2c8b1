"""Mantile: LLM inference performance estimation and design-space sweeps.

Python API (one cost model behind every front door):

- ``estimate(model=..., hardware=..., batch_size=..., input_seq=..., output_seq=..., tp=1, ...) -> dict``
- ``estimate_many([{...}, {...}, ...]) -> list[dict]``: many single points (``estimate`` keyword mappings)
  at once, those sharing a model, hardware and profile in one evaluation (about 0.3-0.4 ms a point)
- ``sweep(model=..., hardware=..., batch_size=[...], tp=[...], ...) -> polars.DataFrame`` (a LazyFrame
  over Parquet files past 2M points)
- ``layer_metrics(model=..., hardware=..., layer_type=..., phase=..., ...) -> dict``
- ``estimate_disagg(model=..., input_seq=..., output_seq=..., prefill={...}, decode={...}, concurrency=...)``:
  P prefill and D decode instances (disaggregated serving) -> dict; ``ratio="auto"`` chooses P and D
- ``disagg_ratio(model=..., input_seq=..., output_seq=..., prefill={...}, decode={...}, request_rate=... or
  max_devices=...)``: the P:D split that matches the two phases' throughputs -> dict
- ``recommend(model=..., input_seq=..., output_seq=..., request_rate=..., ttft_ms=..., tpot_ms=...)``:
  the cheapest deployments meeting an SLA, ranked, with launch commands
- ``models()``, ``hardware()`` -> the catalog ids (a list of str, printed with a one-line summary each)
"""

__version__ = "0.1.0"

from mantile.catalog_api import hardware, models  # noqa: E402
from mantile.disaggregated import disagg_ratio, estimate_disagg  # noqa: E402
from mantile.estimator import estimate, estimate_many, layer_metrics, sweep  # noqa: E402
from mantile.planning import recommend  # noqa: E402

__all__ = ["__version__", "disagg_ratio", "estimate", "estimate_disagg", "estimate_many", "hardware", "layer_metrics",
           "models", "recommend", "sweep"]
