"""Expert-parallel token dispatch and combine: the all-to-all of an MoE layer whose tokens come from
data-parallel attention groups (DeepEP, SGLang/TensorRT-LLM wide EP).

Each of the p devices of the ep group holds ``tokens`` rows after attention and sends each row to the
devices of its k experts (dispatch), then receives the k weighted expert outputs back (combine).
Bytes a device sends = tokens * k * row_bytes (h elements a row). Two modes, as DeepEP ships them
(github.com/deepseek-ai/DeepEP, README "normal" and "low-latency" kernels):

- ``high_throughput`` (prefill): NVLink inside the scale-up domain, RDMA between domains, and a row
  bound for several experts in one remote domain crosses the network once and is forwarded over
  NVLink there. Expected remote domains a row reaches, with its k experts spread uniformly over
  p_out domains: (p_out - 1) * (1 - (1 - 1/p_out)^k);
- ``low_latency`` (decode): every copy goes straight to its expert's device (no forwarding): the plain
  all-to-all of ``comm.all_to_all`` on tokens * k * row_bytes.

Inside one domain both are the same all-to-all. Time = max(inside, across) + latencies + the fixed
collective call cost.
"""

from __future__ import annotations

import numpy as np

from mantile.costs import comm
from mantile.costs.kernels import Array

MODES = ("high_throughput", "low_latency")


def ep_all_to_all(net: comm.Network, tokens: Array, k: float, row_bytes: Array, p: Array, mode: str) -> Array:
    """Seconds for one dispatch (or combine) over p devices (0 when p == 1); see module docstring."""
    sent = tokens * k * row_bytes
    plain = comm.all_to_all(net, sent, p)
    if mode == "low_latency":
        return plain
    p_in, p_out = net.split(p)
    remote = (p_out - 1) * (1.0 - (1.0 - 1.0 / np.maximum(p_out, 1.0)) ** k)
    cross = net.out_latency_s + tokens * remote * row_bytes / net.out_bytes_per_s
    intra = net.up_latency_s + sent * (p_in - 1) / p / net.up_bytes_per_s
    deduped = net.call_s + np.maximum(intra, cross)
    return np.where(p_out > 1, deduped, plain)


def mode_of(phase: str) -> str:
    """DeepEP's choice: high-throughput kernels for prefill, low-latency kernels for decode."""
    return "high_throughput" if phase == "prefill" else "low_latency"
