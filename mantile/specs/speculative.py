"""Speculative decoding: the methods, their default acceptance (``conf/speculative.yaml``) and the
expected tokens a verify step yields.

A verify step runs the target on k + 1 tokens per sequence (the last accepted token and k drafts); it
keeps the accepted prefix of the drafts and adds one token of its own (the bonus token), so it yields
between 1 and k + 1 tokens. With per-position acceptance rates a_i (a_i = P(draft i accepted | drafts
1..i-1 accepted)) the mean is

    tokens_per_step = 1 + sum_{i=1..k} prod_{j<=i} a_j          (Leviathan et al., arXiv:2211.17192, eq. 1)

and with one rate a at every position 1 + a + ... + a^k = (1 - a^(k+1)) / (1 - a).

``spec_acceptance`` as a point gives it: 0 = the method's default rate; a number in (0, 1) = one rate
for every position; a number >= 1 = the mean acceptance length itself (tokens per verify step, the
bonus token counted, as TensorRT-LLM and SGLang report it), which must not exceed k + 1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from omegaconf import OmegaConf

from mantile.specs._load import build, doc
from mantile.specs.catalog import conf_dir
from mantile.specs.errors import SpecError

#: none: plain decoding; draft: a separate draft model (any catalog model); eagle: an EAGLE head (one
#: decoder layer + the LM head, fed the target's hidden states); mtp: the model's own multi-token-prediction
#: modules (DeepSeek-V3 ``num_nextn_predict_layers``); ngram: prompt lookup on the host.
METHODS = ("none", "draft", "eagle", "mtp", "ngram")


@dataclass(frozen=True)
class MethodDefaults:
    acceptance_rate: float = field(metadata=doc("P(a draft token is accepted | the drafts before it were)"))
    source: tuple[str, ...] = field(default=(), metadata=doc("citations a contributor can open"))

    def __post_init__(self) -> None:
        if not 0 < self.acceptance_rate < 1:
            raise SpecError("conf/speculative.yaml", "acceptance_rate", self.acceptance_rate, "a rate in (0, 1)")


@functools.cache
def defaults() -> dict[str, MethodDefaults]:
    """Default acceptance per method (every method but ``none``), from ``conf/speculative.yaml``."""
    path = conf_dir() / "speculative.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    methods = raw.get("methods", {}) if isinstance(raw, dict) else {}
    out = {str(k): build(MethodDefaults, v, str(path), prefix=f"methods.{k}.") for k, v in methods.items()}
    missing = sorted(set(METHODS[1:]) - set(out))
    if missing:
        raise SpecError(str(path), "methods", missing[0], f"an entry for every method of {list(METHODS[1:])}")
    return out


def tokens_from_rates(rates: Sequence[float], k: int) -> float:
    """Mean tokens per verify step from per-position acceptance rates (the first k of ``rates``):
    1 + sum of the cumulative products."""
    if len(rates) < k:
        raise SpecError("arguments", "spec_acceptance", list(rates), f"at least spec_num_tokens = {k} rates")
    for r in rates:
        if not 0 <= r <= 1:
            raise SpecError("arguments", "spec_acceptance", list(rates), "rates in [0, 1], one per draft position")
    return float(1.0 + np.sum(np.cumprod(np.asarray(rates[:k], dtype=float))))


def tokens_per_step(acceptance: np.ndarray, k: np.ndarray, default_rate: np.ndarray) -> np.ndarray:
    """Mean tokens a verify step yields, per point (see module docstring): ``acceptance`` 0 takes
    ``default_rate``; a rate a in (0, 1) gives (1 - a^(k+1)) / (1 - a); >= 1 is the mean itself."""
    acceptance, k = np.asarray(acceptance, dtype=float), np.asarray(k, dtype=float)
    rate = np.where(acceptance > 0, acceptance, default_rate)
    rate = np.clip(rate, 0.0, 1.0 - 1e-12)
    geometric = (1.0 - rate ** (k + 1.0)) / (1.0 - rate)
    return np.where(acceptance >= 1.0, acceptance, geometric)
