"""The Python API of ``recommend``: the cheapest deployments of a workload at a request rate under a
TTFT and TPOT target (``analysis/recommend.py`` for the search and its pruning).

    rec = mantile.recommend(model="llama_3.3_70b", input_seq=2048, output_seq=256, request_rate=20,
                            ttft_ms=1000, tpot_ms=50)
    rec.by_gpus, rec.by_usd_per_hour, rec.by_energy, rec.pareto, rec.commands
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mantile.analysis.recommend import ENGINES, Recommendation, Target
from mantile.analysis.recommend import recommend as _search
from mantile.engine.spec import model_spec
from mantile.specs import SpecError
from mantile.specs.catalog import ids


def _positive(name: str, v: Any, integer: bool = False) -> Any:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if not ok or isinstance(v, bool) or not v > 0:
        raise SpecError("recommend", name, v, "a positive integer" if integer else "a positive number")
    return v


def _choices(name: str, values: Any, valid: Sequence[Any]) -> list[Any]:
    vals = [values] if isinstance(values, (str, int)) else list(values)
    for v in vals:
        if v not in valid:
            raise SpecError("recommend", name, v, list(valid))
    return vals


def recommend(model: Any, input_seq: int, output_seq: int, request_rate: float, ttft_ms: float, tpot_ms: float,
              percentile: str = "p99", hardware: str | Sequence[str] | None = None,
              serving: str | Sequence[str] = ENGINES, dtype: str | Sequence[str] = ("bf16", "fp8"),
              tp: Sequence[int] = (1, 2, 4, 8), pp: Sequence[int] = (1,), ep: Sequence[int] | None = None,
              dp_attention: Sequence[bool] | None = None, disaggregated: bool = True, max_devices: int = 256,
              top: int = 5) -> Recommendation:
    """Deployments of ``model`` serving ``request_rate`` requests/s of ``input_seq`` -> ``output_seq``
    tokens whose TTFT and TPOT (``percentile``: p99 or mean) meet ``ttft_ms`` and ``tpot_ms``, searched
    over ``hardware`` (default: the whole catalog), ``serving`` engines, ``dtype``, plans (``tp``, ``pp``,
    ``ep``, ``dp_attention``; MoE models default to ep in {1, tp} and attention DP with ep = tp), replica
    counts and, with ``disaggregated``, P prefill and D decode instances; at most ``max_devices`` GPUs.

    Returns a ``Recommendation``: ``by_gpus``, ``by_usd_per_hour``, ``by_energy`` (the ``top`` best of
    each), ``pareto`` (tokens/s per GPU against tokens/s per user), ``commands`` (launch commands of the
    best of each ranking), ``deployments`` (every verified deployment meeting the SLA), ``searched``
    (what was pruned and verified) and ``seconds``; ``to_dict()`` for JSON."""
    model_id, mspec = model_spec(model)
    for name, v in (("input_seq", input_seq), ("output_seq", output_seq), ("max_devices", max_devices), ("top", top)):
        _positive(name, v, integer=True)
    for name, x in (("request_rate", request_rate), ("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)):
        _positive(name, x)
    if output_seq < 2:
        raise SpecError("recommend", "output_seq", output_seq, "at least 2 (TPOT needs a second token)")
    _choices("percentile", percentile, ("p99", "mean"))
    systems = _choices("hardware", hardware if hardware is not None else ids("hardware"), ids("hardware"))
    engines = _choices("serving", serving, ids("serving"))
    for name, vals in (("tp", tp), ("pp", pp), ("ep", ep or [1])):
        for v in vals:
            _positive(name, v, integer=True)
    target = Target(input_seq, output_seq, float(request_rate), float(ttft_ms), float(tpot_ms), percentile)
    dtypes = [dtype] if isinstance(dtype, str) else list(dtype)
    return _search(mspec, model_id, target, systems, engines, dtypes, tuple(tp), tuple(pp),
                   None if ep is None else tuple(ep), None if dp_attention is None else tuple(dp_attention),
                   disaggregated, max_devices, top)


__all__ = ["recommend"]
