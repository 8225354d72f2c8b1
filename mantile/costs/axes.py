"""The cost model's typed inputs: one column per axis, one element per sweep point, defaults resolved.

Every default of the sweep keys is resolved here, once: ``embedding_tp`` defaults to ``tp``,
``kv_dtype`` to ``dtype``, and the per-layer-type dtypes (``attention_dtype``, ``feedforward_dtype``,
``embedding_dtype``) to ``dtype``. String columns are numpy string arrays or ``Coded`` (codes into a
few choices, how sweep grids carry them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mantile.costs.blocks import Placement


@dataclass(frozen=True)
class Coded:
    """A string column as codes into a few choices (how sweep grids carry dtype columns)."""

    choices: tuple[str, ...]
    codes: np.ndarray


StrColumn = Coded | np.ndarray | str
#: Numeric axes (floats inside the cost model) and string axes, in the results table's order.
NUMERIC = ("batch_size", "input_seq", "output_seq", "tp", "pp", "dp", "ep", "cp", "sp", "embedding_tp",
           "concurrency", "request_rate")
#: The load keys: exactly one is set per evaluation (0 elsewhere).
LOADS = ("batch_size", "concurrency", "request_rate")
#: Expert-parallel serving keys (``blocks.Placement``, ``feedforward.MoEMLP``) and their defaults.
EXPERT_PARALLEL = {"dp_attention": 0.0, "redundant_experts": 0.0, "expert_imbalance": 1.0}
STRINGS = ("dtype", "kv_dtype", "attention_dtype", "feedforward_dtype", "embedding_dtype")
#: Speculative decoding and prefix caching keys (``serving.speculative``, ``serving.base.Steps``) and their
#: defaults: the method (``specs.speculative.METHODS``), draft tokens per step k, the acceptance (0 = the
#: method's default; a rate in (0, 1); or a mean length >= 1), the fraction of prompt tokens found cached.
SPECULATIVE = {"spec_num_tokens": 0.0, "spec_acceptance": 0.0, "prefix_cache_hit_rate": 0.0}
#: The length of a benchmark run (``serving.queueing``): requests sent in all, 0 = a steady state.
RUN = {"num_requests": 0.0}
#: How a run's output lengths spread about ``output_seq`` (their mean): every request the same (fixed),
#: exponential (a dataset of real conversations, ShareGPT; ``queueing._drain``), or uniform from none to twice
#: the mean (SGLang's ``bench_serving --dataset-name random`` without ``--random-range-ratio``, which draws each
#: request's lengths with ``randint(int(L * ratio), L + 1)``, ratio 0 by default; ``queueing._drain``).
OUTPUT_DISTS = ("fixed", "exponential", "uniform")
#: The squared coefficient of variation of each output distribution, Var[L] / E[L]^2: a sequence seen running
#: is length-biased, E[L^2] / E[L] = (1 + cv^2) E[L] (``serving.system._memory``); uniform on [0, 2m]: 1/3.
OUTPUT_CV2 = {"fixed": 0.0, "exponential": 1.0, "uniform": 1.0 / 3.0}


def lookup(values: StrColumn, table: Mapping[str, float]) -> np.ndarray:
    """Map a string column through ``table`` (missing -> nan)."""
    if isinstance(values, str):  # one point: a numpy scalar
        return np.float64(table.get(values, np.nan))  # type: ignore[return-value]
    if isinstance(values, Coded):
        return np.array([table.get(c, np.nan) for c in values.choices], dtype=float)[values.codes]
    values = np.asarray(values)
    if values.ndim == 0:
        return np.asarray(table.get(str(values), np.nan), dtype=float)
    uniq, inv = np.unique(values, return_inverse=True)
    return np.array([table.get(str(u), np.nan) for u in uniq], dtype=float)[inv]


def map_pairs(a: StrColumn, b: StrColumn, f: Callable[[str, str], str]) -> StrColumn:
    """``f`` applied to each point's pair of strings (e.g. dtype, kv_dtype), computed once per distinct pair."""
    if isinstance(a, str) and isinstance(b, str):
        return f(a, b)
    if isinstance(a, Coded) and isinstance(b, Coded):  # grid columns: pair the codes, not the strings
        keys, inv = np.unique(a.codes * len(b.choices) + b.codes, return_inverse=True)
        return Coded(tuple(f(a.choices[k // len(b.choices)], b.choices[k % len(b.choices)]) for k in keys),
                     np.asarray(inv).reshape(np.broadcast(a.codes, b.codes).shape))
    a_arr, b_arr = (_strings(v) for v in (a, b))
    a_arr, b_arr = np.broadcast_arrays(a_arr, b_arr)
    pairs, inv = np.unique(np.stack([a_arr.ravel(), b_arr.ravel()], axis=1), axis=0, return_inverse=True)
    choices = tuple(f(str(x), str(y)) for x, y in pairs)
    return Coded(choices, np.asarray(inv).reshape(a_arr.shape))


def map_one(a: StrColumn, f: Callable[[str], str]) -> StrColumn:
    """``f`` applied to each point's string, once per distinct value."""
    if isinstance(a, Coded):
        return Coded(tuple(f(c) for c in a.choices), a.codes)
    if isinstance(a, str):
        return f(a)
    uniq, inv = np.unique(np.asarray(a, dtype=str), return_inverse=True)
    return Coded(tuple(f(str(u)) for u in uniq), np.asarray(inv).reshape(np.shape(a)))


def _strings(v: StrColumn) -> np.ndarray:
    if isinstance(v, Coded):
        return np.asarray(v.choices, dtype=object)[v.codes].astype(str)
    return np.asarray(v, dtype=str)


@dataclass(frozen=True)
class Axes:
    """One evaluation's points (see module docstring); ``n`` is the number of points."""

    batch_size: np.ndarray
    concurrency: np.ndarray
    request_rate: np.ndarray
    input_seq: np.ndarray
    output_seq: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray
    cp: np.ndarray
    sp: np.ndarray
    embedding_tp: np.ndarray
    dtype: StrColumn
    kv_dtype: StrColumn
    attention_dtype: StrColumn
    feedforward_dtype: StrColumn
    embedding_dtype: StrColumn
    n: int
    #: which load key this evaluation's points carry: batch_size, concurrency or request_rate
    load: str = "batch_size"
    dp_attention: np.ndarray | float = 0.0
    redundant_experts: np.ndarray | float = 0.0
    expert_imbalance: np.ndarray | float = 1.0
    #: the points' array shape: (n,) for flat columns, () for one point on numpy scalars (estimate), or
    #: any shape the given columns broadcast to (every result column comes out in it)
    shape: tuple[int, ...] = ()
    spec_method: StrColumn = "none"
    spec_num_tokens: np.ndarray | float = 0.0
    spec_acceptance: np.ndarray | float = 0.0
    prefix_cache_hit_rate: np.ndarray | float = 0.0
    num_requests: np.ndarray | float = 0.0
    output_dist: StrColumn = "fixed"

    @classmethod
    def resolve(cls, col: Mapping[str, Any], kv_dtype_for: Callable[[str], str] | None = None,
                embedding_dtype_for: Callable[[str], str] | None = None) -> Axes:
        """Columns as the engine or a front door gives them (numbers, strings, ``Coded``), with the
        optional keys defaulted: ``kv_dtype`` and ``embedding_dtype`` by the serving profile's recipe
        (``kv_dtype_for``, ``embedding_dtype_for``; default: the model dtype). ``input_seq output_seq tp pp
        dp ep cp sp dtype`` and one load key are required."""
        loads = [k for k in LOADS if k in col]
        if len(loads) != 1:
            raise ValueError(f"exactly one load key of {LOADS} is needed, got {loads}")
        num = {k: np.asarray(col[k], dtype=float) for k in NUMERIC if k in col}
        num.setdefault("embedding_tp", num["tp"])
        ep_keys = {k: np.asarray(col[k], dtype=float) for k in (*EXPERT_PARALLEL, *SPECULATIVE, *RUN)
                   if k in col}
        codes = [v.codes for v in col.values() if isinstance(v, Coded)]
        shape = np.broadcast(*num.values(), *ep_keys.values(), *codes).shape
        n = int(np.prod(shape))
        for k in LOADS:  # the points' shape: 0-d columns (one point, estimate's scalar path) stay 0-d
            num.setdefault(k, np.zeros(shape))
        s: dict[str, StrColumn] = {k: col[k] for k in STRINGS if k in col}
        s.setdefault("kv_dtype", map_one(s["dtype"], kv_dtype_for) if kv_dtype_for else s["dtype"])
        s.setdefault("embedding_dtype", map_one(s["dtype"], embedding_dtype_for) if embedding_dtype_for
                     else s["dtype"])
        for kind in ("attention", "feedforward"):
            s.setdefault(f"{kind}_dtype", s["dtype"])
        for key in ("spec_method", "output_dist"):
            if key in col:
                s[key] = col[key]
        return cls(**num, **s, n=n, load=loads[0], **ep_keys, shape=shape)  # type: ignore[arg-type]

    @property
    def load_value(self) -> np.ndarray:
        """The load of each point (sequences, clients or requests/s, per ``load``)."""
        return {"batch_size": self.batch_size, "concurrency": self.concurrency,
                "request_rate": self.request_rate}[self.load]

    @property
    def placement(self) -> Placement:
        """How a replica's devices run attention and experts (``blocks.Placement``)."""
        return Placement(self.tp, self.ep, self.dp_attention)

    @property
    def speculates(self) -> bool:
        """Whether any point decodes speculatively (``spec_method`` other than none)."""
        col = self.spec_method
        if isinstance(col, str):
            return col != "none"
        if isinstance(col, Coded):
            return any(c != "none" for c in col.choices)
        return bool(np.any(np.asarray(col, dtype=str) != "none"))

    def is_method(self, method: str) -> np.ndarray:
        """Per point, whether ``spec_method`` is ``method`` (a bool array of the points' shape)."""
        return self._equals(self.spec_method, method)

    @property
    def varied_outputs(self) -> np.ndarray:
        """Per point, whether the output lengths vary about their mean (``output_dist`` other than fixed)."""
        return ~self._equals(self.output_dist, "fixed")

    @property
    def uniform_outputs(self) -> np.ndarray:
        """Per point, whether the output lengths are uniform from none to twice their mean (``output_dist``)."""
        return self._equals(self.output_dist, "uniform")

    @property
    def output_cv2(self) -> np.ndarray:
        """Per point, the squared coefficient of variation of the output lengths (``OUTPUT_CV2``)."""
        return lookup(self.output_dist, OUTPUT_CV2)

    def _equals(self, col: StrColumn, value: str) -> np.ndarray:
        """Per point, whether the string column ``col`` is ``value`` (a bool array of the points' shape)."""
        if isinstance(col, str):
            return np.broadcast_to(col == value, self.shape)
        if isinstance(col, Coded):
            hit = np.array([c == value for c in col.choices], dtype=bool)
            return np.broadcast_to(hit[col.codes], self.shape)
        return np.broadcast_to(np.asarray(col, dtype=str) == value, self.shape)

    def layer_dtype(self, layer_type: str) -> StrColumn:
        """The dtype a layer type's weights and math use (norms: the embedding's, i.e. the model's)."""
        kind = layer_type if layer_type in ("attention", "feedforward") else "embedding"
        return {"attention": self.attention_dtype, "feedforward": self.feedforward_dtype,
                "embedding": self.embedding_dtype}[kind]
