"""Serving modes: turn per-step costs into TTFT, TPOT, throughput and the running batch.

``static`` (one batch from prefill to last token), ``continuous`` (a fixed running batch with
in-flight prefill) and ``scheduler`` (an engine's caps and queueing under a closed or open loop load)
are modules with a ``timings`` function; ``system.evaluate`` picks one per serving profile and load.
Speculative decoding or disaggregation is one more module beside them.
"""

from __future__ import annotations

from mantile.serving.base import Steps, Timings

MODES = ("static", "continuous", "scheduler")

__all__ = ["MODES", "Steps", "Timings"]
