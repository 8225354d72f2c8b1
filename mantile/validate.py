"""``python -m mantile.validate FILE...``: predicted vs measured, per row, and MAPE per row kind.

Reads measurement files in the JSON-lines format of ``shared/calibration`` (or CSV/Parquet with the
same columns) and the published-results table format (``benchmarks/published``), predicts every row
through the public Python API and prints a per-row table and the mean absolute percentage error.

Mapping (README "Accuracy"):
- model_prefill(batch, seq)       -> estimate(batch_size=batch, input_seq=seq, output_seq=1)["ttft_ms"]
- model_decode(batch, context)    -> estimate(batch_size=batch, input_seq=context, output_seq=2)["tpot_ms"]
- layer_prefill(model, layer, batch, seq) -> layer_metrics(phase="prefill", seq_length=seq)["latency_ms"]
- layer_decode(model, layer, batch, context) -> layer_metrics(phase="decode", kv_length=context)["latency_ms"]
  The measured attention / feedforward blocks include their RMSNorm and residual add: the prediction
  is layer_metrics(layer) + layer_metrics("norm") (one norm + one residual add), explicitly.
- <model>_tp<N>_shard -> <model> at tp=N, compared with latency_ms - comm_ms (the shard's compute).
- published(model, hardware, tp, pp, dp, batch, input_seq, output_seq, batching, metric)
  -> estimate(..., batching=batching)[metric]; a throughput row without a batch is a max-throughput
  run, predicted at the largest batch that fits.
- measure.py ran tinyllama beyond its 2048-token context (random weights): whole-model rows are
  estimated with enforce_max_position=False.
- error rows that ran out of memory -> estimate(...)["fits"] must be False; every model row that ran
  must fit.
- published rows with speculative decoding (``spec_method`` mtp, eagle, eagle3, ngram; ``spec_num_tokens``
  k; ``spec_acceptance_length`` when the source states it, else the method's default) and a
  ``prefix_cache_hit_rate`` are estimated with them (``SPEC_METHODS``); a draft-model row names no draft
  model and is skipped. ``report`` prints their MAPE and how many are within 20%.
- published rows whose ``dataset`` is ShareGPT (real conversations) are estimated with exponential output
  lengths about their mean (``output_dist``: a running sequence holds a whole mean output of KV, and a finite
  closed-loop run ends with its longest outputs draining); rows whose ``dataset`` says SGLang's random
  dataset drew each request's lengths (no ``--random-range-ratio``: ``randint(0, L + 1)``, the row's lengths
  being the means from its totals) with uniform output lengths from none to twice the mean; other synthetic
  datasets keep fixed lengths.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mantile.disaggregated import estimate_disagg
from mantile.estimator import estimate, layer_metrics
from mantile.specs import EfficiencyProfile, SpecError, load_model
from mantile.specs.catalog import has

#: Device name (as torch reports it) -> hardware id; first match wins.
DEVICE_IDS = (("GB200", "nvidia_gb200_single"), ("B200", "nvidia_b200_180gb"), ("H200", "nvidia_h200_141gb"),
              ("H100", "nvidia_h100_80gb"), ("A100", "nvidia_a100_80gb"), ("MI300X", "amd_mi300x"))
#: measure.py's whole-model decode grid: batch -> cache length (error rows name only the batch).
MEASURE_DECODE_CONTEXT = {1: 2048, 8: 2048, 32: 2048, 128: 2048, 256: 1024, 64: 8192}
KINDS = ("model_prefill", "model_decode", "layer_prefill", "layer_decode", "published")
#: Kinds that are not predictions (provenance, ceilings) or are checked by memory_checks.
OTHER_KINDS = ("info", "ceiling", "error", "done")
PUBLISHED_METRICS = ("throughput_tokens_per_s", "throughput_tokens_per_s_per_device", "tpot_ms", "ttft_ms",
                     "e2e_latency_ms", "tokens_per_s_per_user", "request_throughput_per_s", "ttft_p50_ms",
                     "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_ms", "itl_p50_ms", "itl_p99_ms")


#: Metrics where more is better; every other compared metric is a time.
RATE_METRICS = ("throughput_tokens_per_s", "throughput_tokens_per_s_per_device", "tokens_per_s_per_user",
                "request_throughput_per_s")


@dataclass
class Prediction:
    kind: str
    label: str
    measured: float
    predicted: float
    group: str = ""  # published rows: the benchmark/software they come from
    engine: str = ""  # published rows: the serving profile they were predicted with
    speculative: bool = False  # published rows run with speculative decoding (MTP, EAGLE, n-gram)
    disaggregated: bool = False  # published rows from a disaggregated (P/D) deployment
    #: what the floors and bands need (mantile.residuals, mantile.check): the predicted row's regime,
    #: its metric, the physics floor (a ceiling for rates) and the 80% band of that metric
    model: str = ""
    hardware: str = ""
    dtype: str = ""
    load: str = ""
    metric: str = ""
    floor: float = math.nan
    band_low: float = math.nan
    band_high: float = math.nan
    where: str = ""
    #: published rows: whether one sequence of the row's lengths fits beside the weights as Mantile models the
    #: stated deployment (the row ran, so False is an unstated memory setting or a memory-model miss)
    loads: bool = True
    #: the row as read (its columns), for ``--by`` groups
    row: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def error_pct(self) -> float:
        return (self.predicted - self.measured) / self.measured * 100.0

    @property
    def is_rate(self) -> bool:
        """A throughput-like metric (more is better): its floor is a ceiling."""
        return self.metric in RATE_METRICS

    @property
    def time_ratio(self) -> float:
        """Measured over predicted time (per token for a rate): r > 1 means the model was optimistic."""
        return self.predicted / self.measured if self.is_rate else self.measured / self.predicted


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a measurement file; a malformed line or file is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("validate", "file", str(path), "an existing .jsonl, .csv or .parquet file")
    if path.suffix == ".jsonl":
        rows = []
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(str(path), "file", path.name, f"a readable UTF-8 text file ({e})") from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(_labelled(json.loads(line), f"{path}:{number}"))
                except (json.JSONDecodeError, RecursionError) as e:
                    msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                    raise SpecError(f"{path}:{number}", "line", line[:60], f"one JSON object ({msg})") from None
        return rows
    try:
        if path.suffix == ".csv":  # row 1 is the header
            table = pl.read_csv(path, infer_schema_length=10000).to_dicts()
            return [_labelled(r, f"{path}:{i}") for i, r in enumerate(table, 2)]
        if path.suffix == ".parquet":
            return [_labelled(r, f"{path}:row {i}") for i, r in enumerate(pl.read_parquet(path).to_dicts(), 1)]
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError, ValueError) as e:
        raise SpecError(str(path), "file", path.name, f"a readable table ({str(e).splitlines()[0]})") from None
    raise SpecError(str(path), "file", path.suffix, [".jsonl", ".csv", ".parquet"])


WHERE = "_where"  # the file and row number of a row (added by read_rows)
MARK = "check"  # a row's reason for being impossible as stated, set at its source (mantile.check)
#: Errors a malformed row can raise while it is predicted: the row is skipped and named, never a traceback.
ROW_ERRORS = (SpecError, KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def _labelled(row: Any, where: str) -> dict[str, Any]:
    """A row with its file and row number; a JSON line that is not an object becomes a marker row
    that ``unusable_rows`` names."""
    if not isinstance(row, dict):
        return {WHERE: where, "_not_an_object": type(row).__name__}
    return {**row, WHERE: where}


def _where(row: dict[str, Any], number: int) -> str:
    return str(row.get(WHERE, f"row {number}"))


def _skip_reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing column {exc.args[0]!r}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def unusable_rows(rows: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, why) of every row that is not an object or has no known ``kind``."""
    out = []
    for number, row in enumerate(rows, 1):
        if "_not_an_object" in row:
            out.append((_where(row, number), f"a JSON {row['_not_an_object']}, not an object"))
        elif row.get("kind") not in KINDS and row.get("kind") not in OTHER_KINDS:
            out.append((_where(row, number), f"unknown kind {row.get('kind')!r}; known: {[*KINDS, *OTHER_KINDS]}"))
    return out


def hardware_for(row: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    if row.get("hardware"):
        return str(row["hardware"])
    device = str(row.get("device", ""))
    for key, hw in DEVICE_IDS:
        if key in device:
            return hw
    raise SpecError("validate", "device", device, f"a device naming one of {[k for k, _ in DEVICE_IDS]}, "
                    "or pass --hardware")


def model_and_tp(name: str) -> tuple[str, int]:
    """'llama_3.3_70b_tp8_shard' -> ('llama_3.3_70b', 8)."""
    m = re.fullmatch(r"(.+)_tp(\d+)_shard", name)
    return (m.group(1), int(m.group(2))) if m else (name, 1)


def _int(v: Any, default: int = 1, field: str = "value") -> int:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise SpecError("validate", field, v, "an integer") from None


def predict_row(row: dict[str, Any], hardware: str, eff: EfficiencyProfile | None = None,
                serving: str = "pytorch") -> Prediction | None:
    kind = row.get("kind")
    if kind in ("layer_prefill", "layer_decode"):
        model, tp = model_and_tp(row["model"])
        phase = kind.split("_")[1]
        seq = row.get("seq") or row.get("context")
        args = dict(model=model, hardware=hardware, phase=phase, batch_size=row["batch"], seq_length=seq,
                    kv_length=row.get("context"), tp=tp, serving=serving, efficiency=eff, enforce_max_position=False)
        main = layer_metrics(layer_type=row["layer"], **args)
        norm = layer_metrics(layer_type="norm", **args)
        pred = main["latency_ms"] - main["comm_ms"] + norm["latency_ms"]
        floor = main["latency_floor_ms"] - main["comm_floor_ms"] + norm["latency_floor_ms"]
        where = f"s={seq}" if phase == "prefill" else f"ctx={seq}"
        label = f"{row['model']} {row['layer']} b={row['batch']} {where}"
        return Prediction(kind, label, row["ms"], pred, metric="layer_latency_ms", floor=floor)
    if kind == "model_prefill":
        r = estimate(model=row["model"], hardware=hardware, batch_size=row["batch"], input_seq=row["seq"],
                     output_seq=1, serving=serving, efficiency=eff, enforce_max_position=False, **_dtypes(row))
        return Prediction(kind, f"{row['model']} b={row['batch']} s={row['seq']}", row["ms"], r["ttft_ms"],
                          **_checked(row, r, hardware, "ttft_ms", "batch_size"))
    if kind == "model_decode":
        r = estimate(model=row["model"], hardware=hardware, batch_size=row["batch"], input_seq=row["context"],
                     output_seq=2, serving=serving, efficiency=eff, enforce_max_position=False, **_dtypes(row))
        return Prediction(kind, f"{row['model']} b={row['batch']} ctx={row['context']}", row["ms"], r["tpot_ms"],
                          **_checked(row, r, hardware, "tpot_ms", "batch_size"))
    if kind == "published":
        return _published(row, hardware, eff, serving)
    return None


def _dtypes(row: dict[str, Any]) -> dict[str, Any]:
    """A whole-model row's number formats. measure.py's rows quantize only the linear layers: the KV
    cache and the embedding / LM head stay bf16 (shared/calibration/README.md) unless the row says."""
    dtype = str(row.get("dtype") or "bf16")
    if dtype == "bf16" and not row.get("kv_dtype"):
        return {"dtype": dtype}
    keep = str(row.get("embedding_dtype") or "bf16")
    return {"dtype": dtype, "kv_dtype": str(row.get("kv_dtype") or "bf16"), "layers": {"embedding": {"dtype": keep}}}


#: Published metrics -> the results column that predicts them (inter-token latency is the mean TPOT).
PUBLISHED_COLUMNS = {"itl_ms": "tpot_ms", "itl_p50_ms": "tpot_p50_ms", "itl_p99_ms": "tpot_p99_ms"}
#: A benchmark's whole offline request set when the source does not give its size (sent at once).
OFFLINE_REQUESTS = 8192


#: Checkpoint quantization methods trtllm-bench tunes its caps for (a row in any other format, or an
#: unquantized checkpoint run in a format the row names, gets the tuned caps too).
TRTLLM_BENCH_TUNED = ("fp8", "nvfp4", "modelopt_fp4")


def row_serving(row: dict[str, Any]) -> str:
    """The serving profile a published row ran: its ``serving`` column, else read from ``software``;
    TensorRT-LLM's offline throughput runs (trtllm-bench, or no stated load) use ``trtllm_bench``, or
    ``trtllm_bench_untuned`` for a checkpoint format trtllm-bench's tuner skips (its TUNED_QUANTS: NVFP4,
    FP8, block-scaled FP8, none; GPT-OSS's MXFP4 runs with the LLM API's default caps)."""
    named = str(row.get("serving") or "").strip().lower()
    software = f"{row.get('software') or ''} {row.get('serving_version') or ''} {row.get('notes') or ''}".lower()
    if named in ("vllm", "sglang", "trtllm"):
        engine = named
    elif "vllm" in software:
        engine = "vllm"
    elif "sglang" in software:
        engine = "sglang"
    else:  # TensorRT-LLM, NIM, Triton's TensorRT-LLM backend, NVIDIA's MLPerf submissions
        engine = "trtllm"
    offline = not any(_present(row.get(k)) for k in ("batch", "concurrency", "request_rate"))
    if engine == "trtllm" and ("trtllm-bench" in software or offline):
        own = _checkpoint_format(row)  # the row runs its checkpoint's own format, one trtllm-bench may not tune
        return "trtllm_bench_untuned" if own is not None and own not in TRTLLM_BENCH_TUNED else "trtllm_bench"
    return engine


def _present(v: Any) -> bool:
    return v is not None and v != "" and not (isinstance(v, float) and math.isnan(v))


def _load(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row's load as estimate() takes it; None when a latency row states no load. A row that states
    its ``num_requests`` is a finite benchmark run (``serving.queueing._finite_closed``/``_finite_open``:
    the start-up burst and the run's duration count); without it, the steady state."""
    stated = _int(row.get("num_requests"), 0, "num_requests")
    requests = stated or OFFLINE_REQUESTS * _int(row.get("dp"), 1, "dp")
    run = {"num_requests": stated} if stated else {}
    if _present(row.get("concurrency")):  # a closed loop (a source may also list it as the batch)
        return {"concurrency": _int(row.get("concurrency"), field="concurrency"), **run}
    if _present(row.get("batch")):
        return {"batch_size": _int(row.get("batch"), field="batch")}
    if _present(row.get("request_rate")):
        rate = float(row["request_rate"])
        return {"concurrency": requests, **run} if math.isinf(rate) else {"request_rate": rate, **run}
    if str(row.get("metric", "")).startswith(("throughput", "request_throughput")):
        return {"concurrency": requests, **run}  # offline max throughput: every request sent at once
    return None


#: Optional columns of a published row: the engine's launch limits as the source ran them (estimate's
#: keywords of the same names; empty: the serving profile's defaults).
ENGINE_LIMITS = ("max_num_seqs", "max_num_batched_tokens")

#: A published row's spec_method -> Mantile's (EAGLE-3 drafts with an EAGLE head: one layer + LM head).
SPEC_METHODS = {"": "none", "none": "none", "mtp": "mtp", "eagle": "eagle", "eagle3": "eagle", "ngram": "ngram"}
#: The error within which a speculative-decoding row counts as reproduced (issue 12's done-when line).
SPEC_WITHIN_PCT = 20.0


def _speculation(row: dict[str, Any]) -> dict[str, Any]:
    """estimate() keys of a published row's speculative decoding and prefix caching (empty: neither)."""
    method = str(row.get("spec_method") or "").strip().lower()
    if method not in SPEC_METHODS:
        raise SpecError("validate", "spec_method", method, f"{sorted(SPEC_METHODS)} (a draft-model row names no "
                        "draft model)")
    out: dict[str, Any] = {}
    if SPEC_METHODS[method] != "none":
        out = {"spec_method": SPEC_METHODS[method], "spec_num_tokens": _int(row.get("spec_num_tokens"), 0,
                                                                             "spec_num_tokens")}
        if _present(row.get("spec_acceptance_length")):
            out["spec_acceptance"] = float(row["spec_acceptance_length"])
    if _present(row.get("prefix_cache_hit_rate")):
        out["prefix_cache_hit_rate"] = float(row["prefix_cache_hit_rate"])
    return out


#: What a published row's ``dataset`` says when its benchmark drew each request's lengths uniformly (SGLang's
#: ``bench_serving --dataset-name random`` without ``--random-range-ratio``; the curation's wording)
DRAWN_UNIFORM = "lengths drawn per request"


def _outputs(row: dict[str, Any]) -> dict[str, Any]:
    """estimate() keys of how a published row's output lengths spread: a run over ShareGPT (the
    conversations' own completion lengths, which vary widely about their mean) is ``output_dist``
    exponential; a random dataset whose lengths were drawn per request (``DRAWN_UNIFORM``) uniform; other
    synthetic datasets (every request the row's lengths) keep the default, fixed."""
    dataset = str(row.get("dataset") or "").lower()
    if "sharegpt" in dataset:
        return {"output_dist": "exponential"}
    return {"output_dist": "uniform"} if DRAWN_UNIFORM in dataset else {}


def _checkpoint_format(row: dict[str, Any]) -> str | None:
    """The row's dtype when it is its catalog model's own checkpoint quantization (GPT-OSS's mxfp4,
    DeepSeek-V3's fp8), else None."""
    dtype, model = str(row.get("dtype") or "bf16"), str(row.get("model") or "")
    if dtype != "bf16" and has("model", model) and load_model(model).quantization == dtype:
        return dtype
    return None


def _published_dtype(row: dict[str, Any]) -> str:
    """A published row's dtype; the checkpoint's own quantization method means the checkpoint as shipped,
    ``auto``: its recipe quantizes only what the checkpoint does (GPT-OSS: the experts; attention, router
    and embeddings stay bf16), not every layer."""
    return "auto" if _checkpoint_format(row) is not None else str(row.get("dtype") or "bf16")


def _published(row: dict[str, Any], hardware: str, eff: EfficiencyProfile | None, serving: str) -> Prediction | None:
    """A published result under the load it states (a fixed batch, concurrency, or a request rate;
    an offline throughput run is its whole request set at once). Rows without lengths, or latency rows
    without a load, are skipped."""
    if _int(row.get("input_seq"), 0, "input_seq") < 1 or _int(row.get("output_seq"), 0, "output_seq") < 1:
        return None
    metric = str(row.get("metric"))
    if metric not in PUBLISHED_METRICS:
        raise SpecError("validate", "metric", row.get("metric"), PUBLISHED_METRICS)
    load = _load(row)
    if load is None:
        return None
    profile = row_serving(row) if serving == "auto" else serving
    if str(row.get("disagg") or "").strip().lower() not in NOT_DISAGGREGATED:
        return _disaggregated(row, hardware, profile, load)
    args: dict[str, Any] = dict(
        model=row["model"], hardware=hardware, input_seq=_int(row.get("input_seq")),
        output_seq=_int(row.get("output_seq")), tp=_int(row.get("tp"), field="tp"),
        pp=_int(row.get("pp"), field="pp"), dp=_int(row.get("dp"), field="dp"), dtype=_published_dtype(row),
        serving=profile, efficiency=eff, enforce_max_position=False, **load)
    if _present(row.get("kv_dtype")):
        args["kv_dtype"] = row["kv_dtype"]
    if _present(row.get("ep")):  # expert parallelism as the source ran it (DEP: ep = the attention-DP ranks)
        args["ep"] = _int(row.get("ep"), field="ep")
    if _present(row.get("dp_attention")):
        args["dp_attention"] = str(row["dp_attention"]).strip().lower() in ("true", "1", "yes")
    if row.get("batching") == "static":
        args["batching"] = "static"
    for limit in ENGINE_LIMITS:  # the engine's launch limits, where the source states them
        if _present(row.get(limit)):
            args[limit] = _int(row.get(limit), field=limit)
    spec = _speculation(row)
    args.update(spec)
    args.update(_outputs(row))
    r = estimate(**args)
    value = r.get(PUBLISHED_COLUMNS.get(metric, metric))
    if value is None:
        return None
    key = next(k for k in load if k != "num_requests")
    n = load[key]
    checked = _checked(row, r, hardware, metric, key)
    if metric in TTFT_PERCENTILES:  # one request's TTFT: at least its own prompt's prefill, alone
        alone = {k: v for k, v in args.items() if k not in load}
        checked["floor"] = min(checked["floor"], float(estimate(**alone, batch_size=1)["ttft_floor_ms"]))
    spec_label = f" {spec['spec_method']}{spec['spec_num_tokens']}" if "spec_method" in spec else ""
    label = (f"{row['model']}{spec_label} {hardware} tp{_int(row.get('tp'))} {key}={n:g} {row.get('input_seq')}/"
             f"{row.get('output_seq')} {profile} {metric}")
    return Prediction(kind="published", label=label, measured=float(row["value"]), predicted=float(value),
                      group=_family(row), engine=profile, speculative="spec_method" in spec,
                      disaggregated=_present(row.get("disagg")), loads=int(r["max_batch_size"]) >= 1, **checked)


#: A compared metric -> (its floor or ceiling column, its band's (low, high) columns) in a results row.
#: TPOT percentiles are held to the mean's floor: on the ideal machine every request's decode steps are
#: at least its floor's. TTFT percentiles: see TTFT_PERCENTILES.
FLOOR_BAND = {
    "ttft_ms": ("ttft_floor_ms", "ttft_p10_ms", "ttft_p90_ms"),
    "tpot_ms": ("tpot_floor_ms", "tpot_p10_ms", "tpot_p90_ms"),
    "throughput_tokens_per_s": ("throughput_ceiling_tokens_per_s", "throughput_p10_tokens_per_s",
                                "throughput_p90_tokens_per_s"),
}
#: A percentile is one request's TTFT, and which request waits behind which is the run's order: its floor
#: is the lower of the mean's floor (which counts the queue the load implies, on the ideal machine) and
#: that request's prompt prefilled alone on the ideal machine (``_published``). Without the second, a
#: median below a start-up burst's mean floor read as impossible.
TTFT_PERCENTILES = ("ttft_p50_ms", "ttft_p99_ms")
FLOOR_BAND.update({m: FLOOR_BAND["ttft_ms"] for m in TTFT_PERCENTILES})
FLOOR_BAND.update({m: FLOOR_BAND["tpot_ms"] for m in ("tpot_p50_ms", "tpot_p99_ms", "itl_ms", "itl_p50_ms",
                                                      "itl_p99_ms")})


def floor_and_band(r: dict[str, Any], metric: str, output_seq: int) -> tuple[float, float, float]:
    """(floor or ceiling, band low, band high) of ``metric`` in results row ``r``; derived metrics
    scale the throughput or combine TTFT and TPOT as the results table defines them."""
    if metric in FLOOR_BAND:
        return tuple(float(r[c]) for c in FLOOR_BAND[metric])  # type: ignore[return-value]
    thr = [float(r[c]) for c in FLOOR_BAND["throughput_tokens_per_s"]]
    if metric == "throughput_tokens_per_s_per_device":
        return tuple(v / float(r["num_devices"]) for v in thr)  # type: ignore[return-value]
    if metric == "request_throughput_per_s":
        return tuple(v / output_seq for v in thr)  # type: ignore[return-value]
    if metric == "tokens_per_s_per_user":
        return 1000.0 / float(r["tpot_floor_ms"]), 1000.0 / float(r["tpot_p90_ms"]), 1000.0 / float(r["tpot_p10_ms"])
    if metric == "e2e_latency_ms":
        steps = max(output_seq - 1, 0)
        return tuple(float(r[a]) + steps * float(r[b]) for a, b in (  # type: ignore[return-value]
            ("ttft_floor_ms", "tpot_floor_ms"), ("ttft_p10_ms", "tpot_p10_ms"), ("ttft_p90_ms", "tpot_p90_ms")))
    return math.nan, math.nan, math.nan


def _checked(row: dict[str, Any], r: dict[str, Any], hardware: str, metric: str, load: str) -> dict[str, Any]:
    """The Prediction fields mantile.check and the bands read (regime, metric, floor, band)."""
    floor, low, high = floor_and_band(r, metric, _int(row.get("output_seq"), 2, "output_seq"))
    return dict(model=str(row["model"]), hardware=hardware, dtype=str(r["dtype"]), load=load, metric=metric,
                floor=floor, band_low=low, band_high=high)


#: ``disagg`` values of an aggregated row; any other (``decode``, ``1P1D``, ...) is a disaggregated one.
NOT_DISAGGREGATED = ("", "false", "none", "no", "nan")


def _disaggregated(row: dict[str, Any], hardware: str, profile: str, load: dict[str, Any]) -> Prediction | None:
    """A disaggregated row whose decode side was measured (``disagg=decode``): the decode instances of
    ``mantile.estimate_disagg`` under the row's concurrency, with the plan the row states (tp, ep,
    dp_attention; num_devices / tp instances). Rows without that plan, a concurrency, or both lengths
    (most published PD results state neither) are left out; the prefill side is not measured there."""
    metric = str(row.get("metric"))
    if (not _present(row.get("tp")) or "concurrency" not in load or metric not in DECODE_METRICS
            or str(row.get("disagg")).strip().lower() != "decode"):
        return None
    tp = _int(row.get("tp"), field="tp")
    side = {"hardware": hardware, "serving": profile, "tp": tp, "ep": _int(row.get("ep"), field="ep"),
            "dp_attention": str(row.get("dp_attention")).strip().lower() == "true", "dtype": row.get("dtype") or "bf16"}
    instances = max(_int(row.get("num_devices"), tp, "num_devices") // tp, 1)
    r = estimate_disagg(model=row["model"], input_seq=_int(row.get("input_seq")),
                        output_seq=_int(row.get("output_seq")), concurrency=load["concurrency"], prefill=side,
                        decode={**side, "instances": instances})
    if r["tpot_ms"] is None:
        return None
    value = (r["running_batch"] / (r["tpot_ms"] / 1e3) / r["decode_devices"]
             if metric == "throughput_tokens_per_s_per_device" else r["tpot_ms"])
    label = (f"{row['model']} {hardware} decode tp{tp} x{instances} concurrency={load['concurrency']} "
             f"{row.get('input_seq')}/{row.get('output_seq')} {profile} {metric} (disaggregated)")
    return Prediction(kind="published", label=label, measured=float(row["value"]), predicted=float(value),
                      group=_family(row), engine=profile)


#: metrics of a decode-side measurement: output tokens/s per decode GPU, or the TPOT
DECODE_METRICS = ("throughput_tokens_per_s_per_device", "tpot_ms", "itl_ms")


def _family(row: dict[str, Any]) -> str:
    """A source family: the publisher and benchmark a row comes from (the source's site and path)."""
    src = str(row.get("source") or row.get("software") or "")
    src = re.sub(r"^https?://", "", src).split(" ")[0]
    return src[:60]


def memory_checks(rows: Iterable[dict[str, Any]], hardware: str | None,
                  errors: list[tuple[str, str]] | None = None) -> list[tuple[str, bool, bool]]:
    """(label, predicted fits, ran) for every whole-model row and every out-of-memory error row; a
    row that cannot be checked goes to ``errors`` (or raises, without it)."""
    out: list[tuple[str, bool, bool]] = []
    for number, row in enumerate(rows, 1):
        try:
            _memory_check(row, hardware, out)
        except ROW_ERRORS as e:
            if errors is None:
                raise
            errors.append((_where(row, number), "memory check: " + _skip_reason(e)))
    return out


def _memory_check(row: dict[str, Any], hardware: str | None, out: list[tuple[str, bool, bool]]) -> None:
    kind = row.get("kind")
    if kind in ("model_prefill", "model_decode"):
        seq = _int(row.get("seq") or row.get("context"), 0, "seq")
        r = estimate(model=row["model"], hardware=hardware_for(row, hardware), batch_size=row["batch"],
                     input_seq=seq, output_seq=1 if kind == "model_prefill" else 2,
                     enforce_max_position=False, serving="pytorch")
        out.append((f"{kind} {row['model']} b={row['batch']} len={seq}", bool(r["fits"]), True))
    elif kind == "error" and "out of memory" in str(row.get("err", "")).lower():
        m = re.match(r"model_decode (\S+) b=(\d+)", str(row.get("what", "")))
        if not m:
            return
        b = int(m.group(2))
        ctx = row.get("context") or MEASURE_DECODE_CONTEXT.get(b)
        if ctx is None:
            return
        r = estimate(model=m.group(1), hardware=hardware_for(row, hardware), batch_size=b, input_seq=ctx,
                     output_seq=2, serving="pytorch")
        out.append((f"model_decode {m.group(1)} b={b} ctx={ctx} (OOM)", bool(r["fits"]), False))


def skipped(rows: Iterable[dict[str, Any]], preds: list[Prediction], counted: int = 0) -> dict[str, int]:
    """Why rows were not compared: unknown kinds, published rows without lengths, invalid plans."""
    out: dict[str, int] = {}
    for row in rows:
        kind = row.get("kind")
        if kind not in KINDS and kind not in OTHER_KINDS:
            out[f"unknown kind {kind!r}"] = out.get(f"unknown kind {kind!r}", 0) + 1
    compared = sum(1 for p in preds if p.kind == "published")
    published = sum(1 for r in rows if r.get("kind") == "published")
    if published > compared + counted:
        out["published rows without input/output lengths or load, or whose plan is invalid"] = (
            published - compared - counted)
    return out


def _leave_out(skips: dict[str, int] | None, passed: list[tuple[str, str]] | None, why: str, where: str,
               what: str) -> None:
    """Count a row left out by design under ``why`` in ``skips`` and name it (``where``, ``what``) in ``passed``."""
    if skips is not None:
        skips[why] = skips.get(why, 0) + 1
    if passed is not None:
        passed.append((where, what))


def predictions(rows: Iterable[dict[str, Any]], hardware: str | None = None, eff: EfficiencyProfile | None = None,
                serving: str = "auto", skips: dict[str, int] | None = None,
                errors: list[tuple[str, str]] | None = None,
                passed: list[tuple[str, str]] | None = None, marked: bool = False) -> list[Prediction]:
    """Predict every row of a known kind. ``serving='auto'``: our measurements (measure.py) with the
    ``pytorch`` profile, published rows with the engine they name (``row_serving``). Published rows whose
    model or hardware is not in the catalog are skipped and counted in ``skips`` by reason. A row that
    cannot be predicted (a missing or malformed value) goes to ``errors`` as (where, why) when given,
    else raises; rows left out by design (published rows without lengths or load) go to ``passed``.
    A row marked impossible as stated (its ``check`` column, ``mantile.check``) is left out unless
    ``marked``, counted in ``skips`` and named in ``passed``."""
    preds = []
    for number, row in enumerate(rows, 1):
        if row.get("kind") not in KINDS:
            continue
        if _present(row.get(MARK)) and not marked:
            _leave_out(skips, passed, "rows marked impossible as stated (column 'check', python -m mantile.check)",
                       _where(row, number), f"marked: {row[MARK]}")
            continue
        profile = serving if serving != "auto" else ("auto" if row.get("kind") == "published" else "pytorch")
        try:
            p = predict_row(row, hardware_for(row, hardware), eff, profile)
            if p is not None:
                if not (math.isfinite(float(p.measured)) and float(p.measured) > 0):
                    raise ValueError(f"measured value {p.measured!r} is not a positive number")
                if not math.isfinite(float(p.predicted)):
                    raise ValueError(f"prediction {p.predicted!r} is not finite")
        except SpecError as e:
            if row.get("kind") == "published" and e.field in ("model", "hardware", "spec_method") \
                    and skips is not None:
                why = (f"published rows whose {e.field} is not in the catalog ({e.value})" if e.field != "spec_method"
                       else f"published rows whose spec_method Mantile cannot run from the table ({e.value})")
                _leave_out(skips, passed, why, _where(row, number), f"{e.field} {e.value!r} is not in the catalog")
                continue
            if errors is None:
                raise
            errors.append((_where(row, number), _skip_reason(e)))
            continue
        except ROW_ERRORS as e:
            if errors is None:
                raise
            errors.append((_where(row, number), _skip_reason(e)))
            continue
        if p is not None and not p.loads and not marked:
            # the row ran, but as Mantile models the deployment it states, not one sequence fits beside the
            # weights: the engine's default memory settings cannot load it (the run set a larger memory
            # fraction than it records) or the memory model missed. Mantile's answer for such a point is "does
            # not fit", not a latency (its numbers are for one sequence queued behind all the others), so the
            # row is counted and named, not scored, as a row whose plan is invalid is. A row whose stated batch
            # alone does not fit is still scored: the engine runs a smaller batch and queues the rest.
            _leave_out(skips, passed, "published rows that ran but whose stated deployment cannot hold one sequence "
                       "as Mantile models it", _where(row, number), f"does not fit: {p.label}")
            continue
        if p is not None:
            p.where = _where(row, number)
            p.row = row
            preds.append(p)
        elif passed is not None:
            passed.append((_where(row, number), "published row without input/output lengths or a stated load, "
                                                "or with no value for its metric, or a disaggregated row "
                                                "without its decode plan"))
    return preds


def mape(preds: Iterable[Prediction]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for p in preds:
        by.setdefault(p.kind, []).append(abs(p.error_pct))
    return {k: sum(v) / len(v) for k, v in by.items()}


def speculative_summary(preds: Iterable[Prediction]) -> dict[str, Any]:
    """Rows predicted with speculative decoding: their count, MAPE and how many are within
    SPEC_WITHIN_PCT, overall and for aggregated deployments (disaggregated ones need issue 12's P/D
    model, which this estimate does not apply)."""
    rows = [p for p in preds if p.speculative]
    agg = [p for p in rows if not p.disaggregated]
    within = lambda ps: sum(1 for p in ps if abs(p.error_pct) <= SPEC_WITHIN_PCT)  # noqa: E731
    return {"rows": len(rows), "aggregated": len(agg), "within": within(rows), "aggregated_within": within(agg),
            "mape": sum(abs(p.error_pct) for p in rows) / len(rows) if rows else float("nan")}


def report(preds: list[Prediction], checks: list[tuple[str, bool, bool]], verbose: bool = True,
           skips: dict[str, int] | None = None) -> str:
    lines = []
    if verbose:
        lines.append(f"{'kind':<14} {'row':<52} {'measured':>12} {'predicted':>12} {'error':>8}")
        for p in preds:
            lines.append(f"{p.kind:<14} {p.label[:52]:<52} {p.measured:>12.4g} {p.predicted:>12.4g} "
                         f"{p.error_pct:>+7.1f}%")
        lines.append("")
    lines.append(f"{'kind':<14} {'rows':>5} {'MAPE':>8}")
    counts: dict[str, int] = {}
    for p in preds:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    for k, v in mape(preds).items():
        lines.append(f"{k:<14} {counts[k]:>5} {v:>7.1f}%")
    for title, key in (("engine", "engine"), ("source", "group")):
        groups: dict[str, list[float]] = {}
        for p in preds:
            if getattr(p, key):
                groups.setdefault(getattr(p, key), []).append(p.error_pct)
        if groups:
            lines.append("\n" + _groups_table(title, groups, 60))
    spec = speculative_summary(preds)
    if spec["rows"]:
        lines.append(f"\nspeculative decoding rows: {spec['rows']} (aggregated {spec['aggregated']}), MAPE "
                     f"{spec['mape']:.1f}%; within {SPEC_WITHIN_PCT:g}%: {spec['within']} "
                     f"(aggregated {spec['aggregated_within']})")
    for why, n in (skips or {}).items():
        lines.append(f"skipped {n} row(s): {why}")
    if checks:
        ok = sum(1 for _, fits, ran in checks if fits == ran)
        lines.append(f"memory check: {ok}/{len(checks)} rows agree (ran -> fits, out of memory -> does not fit)")
        for label, fits, ran in checks:
            if fits != ran:
                lines.append(f"  WRONG: {label}: predicted {'fits' if fits else 'does not fit'}")
    return "\n".join(lines)


#: what ``--by`` can group on beside a row's own columns: the Prediction's fields (``engine`` is the serving
#: profile the row was predicted with, ``group`` its source)
PREDICTION_KEYS = ("kind", "engine", "group", "model", "hardware", "dtype", "load", "metric")


def parse_where(terms: Iterable[str]) -> list[tuple[str, str, bool]]:
    """``COLUMN=VALUE`` (equals) and ``COLUMN~=TEXT`` (contains) terms (``--where``) as (column, value,
    contains) triples; a term with neither is an error."""
    out = []
    for term in terms:
        column, eq, value = term.partition("=")
        contains = column.endswith("~")
        column = column[:-1] if contains else column
        if not eq or not column.strip():
            raise SpecError("--where", "where", term, "COLUMN=VALUE or COLUMN~=TEXT, e.g. mapped=true")
        out.append((column.strip(), value.strip().lower(), contains))
    return out


def select_rows(rows: list[dict[str, Any]], where: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    """The rows where every ``where`` term holds: the column equals the value, or contains the text (as
    text, case-insensitive). A column no row has is an error naming the columns there are (a typo would
    otherwise select nothing, silently)."""
    if not where:
        return rows
    columns = {k for r in rows for k in r}
    for column, _, _ in where:
        if column not in columns:
            raise SpecError("--where", "column", column, sorted(columns))

    def holds(row: dict[str, Any], column: str, value: str, contains: bool) -> bool:
        text = str(row.get(column, "")).strip().lower()
        return value in text if contains else text == value

    return [r for r in rows if all(holds(r, *term) for term in where)]


def _group_value(p: Prediction, column: str) -> str:
    value = p.row.get(column)
    if _present(value):
        return str(value)
    return str(getattr(p, column, "") or "") if column in PREDICTION_KEYS else ""


def check_by(preds: list[Prediction], columns: list[str]) -> None:
    """Every ``--by`` column is a column of a predicted row or a Prediction field."""
    known = {k for p in preds for k in p.row} | set(PREDICTION_KEYS)
    for column in columns:
        if column not in known:
            raise SpecError("--by", "column", column, sorted(known))


def by_table(preds: list[Prediction], columns: list[str]) -> str:
    """MAPE and median signed error per combination of ``columns`` (``--by``; a row's empty column reads
    as the Prediction's field of that name where there is one, else blank)."""
    groups: dict[str, list[float]] = {}
    for p in preds:
        groups.setdefault(" / ".join(_group_value(p, c) for c in columns), []).append(p.error_pct)
    title = " / ".join(columns)
    return "\n\n" + _groups_table(title, groups, max([len(title), *map(len, groups)]) + 2)


def _groups_table(title: str, groups: dict[str, list[float]], width: int) -> str:
    """One line per group, sorted: its rows, MAPE (mean absolute error) and median signed error, in %."""
    lines = [f"{title:<{width}} {'rows':>5} {'MAPE':>8} {'median':>8}"]
    for g, errs in sorted(groups.items()):
        median = sorted(errs)[len(errs) // 2]
        lines.append(f"{g:<{width}} {len(errs):>5} {sum(abs(e) for e in errs) / len(errs):>7.1f}% {median:>+7.1f}%")
    return "\n".join(lines)


def _coverage(preds: list[Prediction]) -> str:
    """The held-out coverage of the error bands per engine (``mantile.residuals``), where the rows come
    from at least two source families."""
    from mantile import residuals  # it reads Prediction from this module

    rs = residuals.residuals(preds)
    return residuals.coverage_report(rs) if len({r.family for r in rs}) > 1 else ""


#: ``--out``'s formats, by suffix
OUT_SUFFIXES = (".csv", ".parquet")
#: ``--out``'s prediction columns, after the row's own (a row column of the same name is kept as ``row_<name>``)
OUT_COLUMNS = ("where", "kind", "label", "engine", "group", "model", "hardware", "dtype", "load", "metric",
               "speculative", "disaggregated", "measured", "predicted", "error_pct", "floor", "band_low",
               "band_high", "loads")


def check_out(path: Path) -> None:
    """``--out``'s path, checked before any work: a .csv or .parquet file in an existing directory."""
    path = Path(path)
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise SpecError("validate", "out", str(path), f"a file ending in {' or '.join(OUT_SUFFIXES)}")
    if not path.parent.is_dir():
        raise SpecError("validate", "out", str(path), "a file in an existing directory")


def predictions_frame(preds: list[Prediction]) -> pl.DataFrame:
    """One row per prediction: the measurement row's own columns (as text, as read), then the prediction's."""
    records = []
    for p in preds:
        rec: dict[str, Any] = {}
        for k, v in p.row.items():
            if str(k).startswith("_"):
                continue
            rec[f"row_{k}" if k in OUT_COLUMNS else str(k)] = None if v is None else str(v)
        for k in OUT_COLUMNS:
            rec[k] = p.error_pct if k == "error_pct" else getattr(p, k)
        records.append(rec)
    columns = list(dict.fromkeys(k for rec in records for k in rec))
    return pl.DataFrame([{c: rec.get(c) for c in columns} for rec in records], infer_schema_length=None)


def write_predictions(preds: list[Prediction], path: Path) -> Path:
    """``--out``: the predictions as a table, written next to ``path`` and renamed into place (a reader sees
    the old file or the whole new one)."""
    from mantile.engine import io

    path = Path(path)
    df = predictions_frame(preds)
    if path.suffix.lower() == ".parquet":
        return io.write_parquet(df, path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.write_csv(tmp)
        io.replace_path(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mantile.validate", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="measurement files (.jsonl, .csv, .parquet)")
    ap.add_argument("--hardware", help="hardware id for rows that do not name one (default: from 'device')")
    ap.add_argument("--serving", default="auto", help="serving profile: auto (pytorch for measure.py rows, the "
                    "engine a published row names), or a conf/serving/ id for every row")
    ap.add_argument("--quiet", action="store_true", help="only the MAPE table")
    ap.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                    help="keep only the rows whose COLUMN equals VALUE, or with COLUMN~=TEXT contains TEXT (text, "
                    "case-insensitive); repeatable, all must hold (e.g. --where mapped=true --where source~=gpustack)")
    ap.add_argument("--out", type=Path, metavar="PATH",
                    help="also write one row per compared measurement (the row's own columns, then the prediction: "
                    "predicted, error_pct, floor, band_low, band_high, ...) to PATH (.csv or .parquet), whole or not "
                    "at all, for DuckDB, Polars or pandas")
    ap.add_argument("--by", default="", metavar="COLUMNS",
                    help="also print MAPE and median error per combination of these comma-separated row columns "
                    f"(or Prediction fields: {', '.join(PREDICTION_KEYS)}), e.g. --by serving,hardware,dtype,metric")
    args = ap.parse_args(argv)
    by = [c.strip() for c in args.by.split(",") if c.strip()]
    errors: list[tuple[str, str]] = []
    passed: list[tuple[str, str]] = []
    try:
        selection = parse_where(args.where)
        if args.out is not None:
            check_out(args.out)
        rows = [r for f in args.files for r in read_rows(f)]
        errors += unusable_rows(rows)
        rows = [r for r in rows if "_not_an_object" not in r and r.get("kind") in (*KINDS, *OTHER_KINDS)]
        rows = select_rows(rows, selection)
        missing: dict[str, int] = {}
        preds = predictions(rows, args.hardware, serving=args.serving, skips=missing, errors=errors, passed=passed)
        checks = memory_checks(rows, args.hardware, errors=errors)
        skips = {**missing, **skipped(rows, preds, sum(missing.values()))}
        if by:
            check_by(preds, by)
        text = (report(preds, checks, verbose=not args.quiet, skips=skips) + (by_table(preds, by) if by else "")
                + _coverage(preds))
        if args.out is not None and preds:
            write_predictions(preds, args.out)
    except (SpecError, FileNotFoundError) as e:
        print(f"mantile.validate: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - never a traceback: one line, and a non-zero exit
        print(f"mantile.validate: error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return 2
    print(text)
    for where, why in passed + errors:
        print(f"skipped {where}: {why}")
    if errors:
        print(f"mantile.validate: {len(errors)} row(s) could not be compared (listed above)", file=sys.stderr)
        return 1
    if not preds and not checks:
        print("mantile.validate: error: no row could be compared", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
