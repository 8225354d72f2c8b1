"""How much of the throughput gap on finite ShareGPT runs the drain of variable output lengths explains.

    .venv/bin/python benchmarks/published/drain_prototype.py

A measurement of an effect the model does not have yet (README, "Accuracy": GPUStack's runs of 1,000
ShareGPT prompts sent at once come out 2-4x too fast), not part of Mantile. Mantile runs every request
of a finite run at the row's mean output length O, so its run ends with the last full wave. A real
ShareGPT run's outputs vary; here they are taken exponential about O (memoryless: the assumption, not a
measured distribution) and the run as a fluid in decode steps: C requests run while the queue of the
N sent at once lasts, (N - C) O / C steps at step(C); then the C left drain, C e^(-t/O) of them still
running t steps later, until the last one ends, O H_C steps on (H_C the C-th harmonic number, the
expected longest of C exponential lengths). step(b) is Mantile's own decode step at a running batch
of b (``estimate(batch_size=b)["tpot_ms"]``); C is the running batch Mantile predicts for the row. The
row's predicted throughput is scaled by (the same integral at fixed lengths, N O / C step(C)) over the
drained run's. Prints each GPUStack throughput row that sends every prompt at once (concurrency =
num_requests) and the MAPE both ways.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from mantile import estimate, validate

ROOT = Path(__file__).resolve().parent.parent.parent
FILE = ROOT / "benchmarks" / "published" / "serving_results.csv"


def rows() -> list[dict[str, Any]]:
    """GPUStack's ShareGPT throughput rows that send every prompt at once."""
    out = []
    for r in validate.read_rows(FILE):
        if ("gpustack" in str(r.get("source")) and "sharegpt" in str(r.get("dataset", "")).lower()
                and r["metric"] == "throughput_tokens_per_s" and r.get("num_requests")
                and r.get("concurrency") == r.get("num_requests")):
            out.append(r)
    return out


def step_s(base: dict[str, Any], cache: dict[int, float], b: float) -> float:
    """Mantile's decode step (s) at a running batch of b, the row's other arguments as ``base``."""
    n = max(1, int(round(b)))
    if n not in cache:
        cache[n] = float(estimate(**base, batch_size=n)["tpot_ms"]) / 1e3
    return cache[n]


def main() -> None:
    seen: dict[str, Any] = {}

    def capture(**kw: Any) -> dict[str, Any]:  # the estimate() arguments validate builds for the row
        seen.clear()
        seen.update(kw)
        return estimate(**kw)

    validate.estimate = capture  # type: ignore[assignment]
    before, after = [], []
    for row in rows():
        preds = list(validate.predictions([row], skips={}))
        if not preds:
            continue
        p, args = preds[0], dict(seen)
        r = estimate(**args)
        N, O, C = float(args["num_requests"]), float(args["output_seq"]), float(r["running_batch"])  # noqa: E741
        base = {k: v for k, v in args.items() if k not in ("concurrency", "num_requests")}
        cache: dict[int, float] = {}

        def step(b: float, base: dict[str, Any] = base, cache: dict[int, float] = cache) -> float:
            return step_s(base, cache, b)

        harmonic = sum(1.0 / k for k in range(1, int(C) + 1))
        fixed = N * O / C * step(C)
        t = np.linspace(0.0, O * harmonic, 40)
        drain = float(np.trapezoid([step(C * math.exp(-x / O)) for x in t], t))
        drained = max(N - C, 0.0) * O / C * step(C) + drain
        new = p.predicted * fixed / drained
        e_new = 100.0 * (new / p.measured - 1.0)
        before.append(abs(p.error_pct))
        after.append(abs(e_new))
        print(f"{row['model']:16s} {row['hardware']:18s} {row['serving']:6s} N={N:5.0f} C={C:6.0f} O={O:4.0f} "
              f"measured {p.measured:8.0f}  fixed lengths {p.predicted:8.0f} ({p.error_pct:+7.1f}%)  "
              f"drained {new:8.0f} ({e_new:+7.1f}%)")
    print(f"{len(before)} rows: throughput MAPE {statistics.mean(before):.1f}% at fixed lengths, "
          f"{statistics.mean(after):.1f}% with the exponential drain")


if __name__ == "__main__":
    main()
