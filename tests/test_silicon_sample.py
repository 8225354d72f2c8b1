"""benchmarks/aiconfigurator/silicon_sample.py's bookkeeping of aiconfigurator's end-to-end sample: a run the
package lists twice (two ids, same configuration, engine version and measured values) is scored once, and a
configuration measured again with another result is kept and reported. Hand-made samples; the package itself is
not needed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "aiconfigurator" / "silicon_sample.py"


def _script() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("silicon_sample", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample(id_: str, source: str, version: str, ttft: str, tpot: str, batch: str = "8") -> dict[str, str]:
    return {"id": id_, "silicon_data_source": source, "backend": "trtllm", "backend_version": version,
            "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "precision": "fp8", "mode": "agg",
            "isl": "1024", "osl": "1024", "batch_size": batch, "tp_size": "8", "silicon_ttft_ms": ttft,
            "silicon_tpot_ms": tpot}


def test_a_run_listed_twice_is_kept_once_and_a_remeasured_configuration_is_kept() -> None:
    s = _script()
    first = _sample("a_97", "source_file=2026-04-06.csv; silicon_concurrency=8; measured=2026-02-05",
                    "1.2.0rc6.post3", "153.26636115205474", "6.816429102624574")
    # the same run exported in another file: its TTFT differs in the 16th significant digit
    copy = _sample("b_1034", "source_file=2026-03-25.csv; silicon_concurrency=8; measured=2026-02-05T19:55:05Z",
                   "1.2.0rc6.post3", "153.2663611520547", "6.816429102624574")
    # the same configuration under an earlier engine version: another measurement
    again = _sample("c_1182", "source_file=2026-03-25.csv; silicon_concurrency=8; measured=2026-01-29",
                    "1.2.0rc6.post2", "181.47400541347452", "11.084649822290052")
    # another concurrency (stated only in the source string): another configuration
    other = _sample("d_1021", "source_file=2026-03-25.csv; silicon_concurrency=4; measured=2026-02-05",
                    "1.2.0rc6.post3", "153.26636115205474", "6.816429102624574")
    kept, dropped, differ = s.repeats([first, copy, again, other])
    assert [k["id"] for k in kept] == ["a_97", "c_1182", "d_1021"]
    assert dropped == 1
    assert len(differ) == 1 and {x["id"] for x in differ[0][1]} == {"a_97", "c_1182"}
    # TPOT 11.08 over 6.82 ms: 1.626 (by hand: 11.084649822290052 / 6.816429102624574)
    assert abs(s._spread(differ[0][1], "silicon_tpot_ms") - 11.084649822290052 / 6.816429102624574) < 1e-12
