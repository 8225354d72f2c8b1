"""Serving modes: turn per-step costs into TTFT, TPOT, throughput and the running batch.

``MODES`` maps a serving profile's ``batching`` to its module's ``timings(steps)``; an engine
scheduler, speculative decoding or disaggregation is one more module and one more entry.
"""

from __future__ import annotations

from collections.abc import Callable

from mantile.serving import continuous, static
from mantile.serving.base import Steps, Timings

MODES: dict[str, Callable[[Steps], Timings]] = {"static": static.timings, "continuous": continuous.timings}

__all__ = ["MODES", "Steps", "Timings"]
