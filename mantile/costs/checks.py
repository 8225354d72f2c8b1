"""Plan checks: which points are invalid (a degree that does not divide the model, more devices than the
system has, a context beyond the model's, a dtype the device lacks), as codes with messages."""

from __future__ import annotations

import numpy as np

from mantile.costs.axes import Axes
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec

#: Invalid-plan codes (0 = valid), checked in this order; messages are filled in by ``reasons``.
INVALID = {
    1: "tp={tp} does not divide num_attention_heads ({heads})",
    2: "tp={tp} and num_key_value_heads ({kv_heads}) do not divide one another",
    3: "ep={ep} invalid: ep must be 1 for a dense model, and divide tp and num_local_experts ({experts})",
    4: "sp={sp} invalid: sequence parallel must be 1 or tp ({tp})",
    5: "cp={cp} too large: input_seq/cp must be at least {min_tokens} tokens per device",
    6: "pp={pp} exceeds num_hidden_layers ({layers})",
    7: "plan needs tp*cp*pp*dp devices, more than the system's {devices} devices",
    8: "input_seq + output_seq exceeds max_position_embeddings ({max_pos})",
    9: "dtype has no peak on {device}; available: {dtypes}",
    10: "embedding tp must divide tp*cp",
    13: "ep={ep} larger than tp={tp}: ep must be a multiple of tp and at most num_local_experts ({experts}) "
        "plus the redundant experts",
    14: "plan needs max(tp,ep)*cp*pp*dp devices, more than the system's {devices} devices",
    15: "spec_method=mtp needs a model with multi-token-prediction layers (num_nextn_predict_layers = "
        "{mtp_layers}); use draft, eagle or ngram",
    16: "spec_acceptance is a mean acceptance length above spec_num_tokens + 1 (a verify step yields at most "
        "k + 1 tokens); give a length in [1, k + 1] or a per-position rate in (0, 1)",
    17: "spec_method=draft needs a draft model: set spec_draft_model to a catalog model id",
    # set by the serving mode, after the plan checks:
    11: "request_rate is more than this plan serves: requests would queue without bound",
    12: "request_rate needs a continuous-batching serving profile (a static batch has no arrivals)",
}


def reason_messages(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile) -> dict[int, str]:
    """Invalid-code -> message with the model and hardware constants filled in ({tp} etc. stay)."""
    facts = dict(heads=model.num_attention_heads, kv_heads=model.num_key_value_heads,
                 experts=model.num_local_experts, layers=model.num_hidden_layers, devices=hw.num_devices,
                 max_pos=model.max_position_embeddings, device=hw.device.name,
                 mtp_layers=model.num_nextn_predict_layers,
                 dtypes=sorted(hw.device.peak_tflops), min_tokens=eff.gemm_tile_m)
    out = {}
    for code, text in INVALID.items():
        for k, v in facts.items():
            text = text.replace("{" + k + "}", str(v))
        out[code] = text
    return out


#: The key each invalid-plan code is about (for front doors that must name a field).
INVALID_FIELDS = {1: "tp", 2: "tp", 3: "ep", 4: "sp", 5: "cp", 6: "pp", 7: "dp", 8: "input_seq", 9: "dtype",
                  10: "embedding_tp", 11: "request_rate", 12: "serving", 13: "ep", 14: "ep", 15: "spec_method",
                  16: "spec_acceptance", 17: "spec_draft_model"}


def invalid_codes(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, ax: Axes,
                  peak_ok: np.ndarray | bool, enforce_max_position: bool = True, has_draft: bool = False
                  ) -> np.ndarray:
    """Per point, the first failing check of INVALID (0 = a valid plan); ``has_draft``: a draft model is
    named (speculative decoding with spec_method=draft)."""
    tp, ep, sp, cp, pp, dp = ax.tp, ax.ep, ax.sp, ax.cp, ax.pp, ax.dp
    nh, nkv = model.num_attention_heads, model.num_key_value_heads
    attn_tp, replica = ax.placement.attention_tp, ax.placement.devices
    experts = model.num_local_experts + np.asarray(ax.redundant_experts)
    mla = model.kv_lora_rank > 0  # one latent per token: no kv heads to divide
    checks = [
        (1, nh % attn_tp != 0),
        (2, (not mla) & (nkv % attn_tp != 0) & (attn_tp % nkv != 0)),
        (3, (ep > 1) & (not model.is_moe) | (ep <= tp) & ((tp % ep != 0) | (experts % ep != 0))),
        (4, (sp != 1) & (sp != tp)),
        (5, (cp > 1) & (ax.input_seq / cp < eff.gemm_tile_m)),
        (6, pp > model.num_hidden_layers),
        (7, tp * cp * pp * dp > hw.num_devices),
        (8, enforce_max_position & (ax.input_seq + ax.output_seq > model.max_position_embeddings)),
        (9, ~peak_ok),
        (10, (tp * cp) % ax.embedding_tp != 0),
        (13, (ep > tp) & ((ep % tp != 0) | (experts < ep))),
        (14, replica * cp * pp * dp > hw.num_devices),
    ]
    if ax.speculates:
        checks += [
            (15, ax.is_method("mtp") & (model.num_nextn_predict_layers == 0)),
            (16, ~ax.is_method("none") & (np.asarray(ax.spec_acceptance) > np.asarray(ax.spec_num_tokens) + 1)),
            (17, ax.is_method("draft") & (not has_draft)),
        ]
    if np.ndim(tp) == 0:  # one point: the first failing check, as a numpy scalar
        return np.int16(next((c for c, bad in checks if bad), 0))  # type: ignore[return-value]
    code = np.zeros(ax.shape, dtype=np.int16)
    for c, bad in reversed(checks):
        code = np.where(bad, c, code)
    return code
