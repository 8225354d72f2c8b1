"""Upper bounds on sizes at every front door (CLI sweep keys, Python API, HTTP API).

A size past these bounds is not a deployment anyone runs, and past 2**63 it would overflow the
int64 columns of the results table into garbage; each is rejected before any work starts, with a
SpecError naming the field, the value and the bound.
"""

from __future__ import annotations

from mantile.specs import SpecError

MAX_BATCH_SIZE = 1_000_000  # concurrent sequences per replica
MAX_SEQ_TOKENS = 10_000_000  # prompt or generated tokens per sequence, KV cache length
MAX_DEGREE = 65_536  # any parallel degree (tp, pp, dp, ep, cp, sp, embedding_tp)
MAX_REQUESTS = 1_000_000_000  # requests of a benchmark run (num_requests)

#: field name (CLI key, Python API argument or HTTP body field) -> its largest accepted value
TOKEN_FIELDS = ("input_seq", "output_seq", "seq_length", "kv_length")
BATCH_FIELDS = ("batch_size", "max_batch_size")


def max_value(field: str) -> int:
    """The bound of a size field: batch sizes, token counts, else a parallel degree."""
    name = field.rsplit(".", 1)[-1]
    if name in BATCH_FIELDS:
        return MAX_BATCH_SIZE
    if name in TOKEN_FIELDS:
        return MAX_SEQ_TOKENS
    if name == "num_requests":
        return MAX_REQUESTS
    return MAX_DEGREE


def check_size(field: str, value: int, where: str = "arguments") -> int:
    """``value`` if it is at most the bound of ``field``; else a SpecError naming both."""
    bound = max_value(field)
    if value > bound:
        raise SpecError(where, field, value, f"at most {bound:,} (a larger {field} is not a real deployment)")
    return value
