"""The whole system: time to first token, time per output token, throughput, memory, fits.

``evaluate`` takes whole columns (numpy arrays, one element per sweep point) for one model on one
hardware system and returns the results-table columns (DESIGN.md contract) as arrays.

Definitions (per replica; dp replicas run side by side):
- TTFT = prefill of batch x input_seq tokens (+ the LM head of the first token). With pp > 1 the
  batch is split into m = min(pp, batch) micro-batches: TTFT = T(b/m) + (m - 1) T(b/m)/pp + (pp-1) p2p.
- TPOT = one decode step at the mean cache length input_seq + output_seq/2 (time is linear in the
  cache length, so this is the mean over the decode phase); with pp > 1, m micro-batches keep the
  stages busy and each sequence waits one full pass: TPOT = T(b/m) + (pp - 1) p2p.
- e2e = TTFT + (output_seq - 1) TPOT; throughput = dp * batch * output_seq / e2e (static batch
  from prefill to last token); decode throughput = dp * batch / TPOT.

``ServingProfile.max_prefill_tokens`` bounds the activation memory of a prefill (engines run long prompts
in chunks); the prefill time is computed for the whole batch in one pass, which costs about the same
as the chunks in sequence (the GEMMs are linear in tokens; chunking adds a few kernel launches).

``ServingProfile.batching = "continuous"`` models a serving engine in steady state instead (in-flight
batching with chunked prefill, as vLLM / TensorRT-LLM / SGLang run): ``batch`` sequences are always
running; each finishes after output_seq tokens and is replaced, so every iteration also prefills
batch / output_seq new prompts of input_seq tokens in the same kernels. TPOT = one such mixed
iteration; TTFT = a prompt's own prefill (alone) + one iteration to join the batch;
throughput = dp * batch / TPOT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import comm, layers, memory
from mantile.costs.kernels import Array, Cost, Machine
from mantile.specs.dtypes import ACTIVATION_BYTES, BYTES_PER_ELEMENT
from mantile.specs.hardware import EfficiencyProfile, HardwareSpec
from mantile.specs.model import ModelSpec
from mantile.specs.serving import ServingProfile

BOUNDS = np.array(["compute", "memory", "communication", "overhead"])
TOTAL_SLOTS = ("flops", "bytes", "busy_s", "compute_bound_s", "overhead_s", "comm_s")
GB = 1e9


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
}


def reason_messages(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile) -> dict[int, str]:
    """Invalid-code -> message with the model and hardware constants filled in ({tp} etc. stay)."""
    facts = dict(heads=model.num_attention_heads, kv_heads=model.num_key_value_heads,
                 experts=model.num_local_experts, layers=model.num_hidden_layers, devices=hw.num_devices,
                 max_pos=model.max_position_embeddings, device=hw.device.name,
                 dtypes=sorted(hw.device.peak_tflops), min_tokens=eff.gemm_tile_m)
    out = {}
    for code, text in INVALID.items():
        for k, v in facts.items():
            text = text.replace("{" + k + "}", str(v))
        out[code] = text
    return out


@dataclass(frozen=True)
class Coded:
    """A string column as codes into a few choices (how sweep grids carry dtype columns)."""

    choices: tuple[str, ...]
    codes: np.ndarray


def _lookup(values: np.ndarray | Coded | str, table: dict[str, float]) -> np.ndarray:
    """Map a string column through ``table`` (missing -> nan)."""
    if isinstance(values, Coded):
        return np.array([table.get(c, np.nan) for c in values.choices], dtype=float)[values.codes]
    values = np.asarray(values)
    if values.ndim == 0:
        return np.asarray(table.get(str(values), np.nan), dtype=float)
    uniq, inv = np.unique(values, return_inverse=True)
    return np.array([table.get(str(u), np.nan) for u in uniq], dtype=float)[inv]


def _exposed(c: Cost, overlap: bool) -> Array:
    if not overlap:
        return c.latency_s
    return c.busy_s + c.overhead_s + np.maximum(c.comm_s - c.busy_s, 0.0)


#: The key each invalid-plan code is about (for front doors that must name a field).
INVALID_FIELDS = {1: "tp", 2: "tp", 3: "ep", 4: "sp", 5: "cp", 6: "pp", 7: "dp", 8: "input_seq", 9: "dtype",
                  10: "embedding_tp"}


def invalid_codes(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, col: dict[str, Array],
                  peak_ok: Array, enforce_max_position: bool = True) -> np.ndarray:
    """Per point, the first failing check of INVALID (0 = a valid plan)."""
    tp, ep, sp, cp, pp, dp = (col[k] for k in ("tp", "ep", "sp", "cp", "pp", "dp"))
    nh, nkv = model.num_attention_heads, model.num_key_value_heads
    checks = [
        (1, nh % tp != 0),
        (2, (nkv % tp != 0) & (tp % nkv != 0)),
        (3, (ep > 1) & (not model.is_moe) | (tp % ep != 0) | (model.num_local_experts % ep != 0)),
        (4, (sp != 1) & (sp != tp)),
        (5, (cp > 1) & (col["input_seq"] / cp < eff.gemm_tile_m)),
        (6, pp > model.num_hidden_layers),
        (7, tp * cp * pp * dp > hw.num_devices),
        (8, enforce_max_position & (col["input_seq"] + col["output_seq"] > model.max_position_embeddings)),
        (9, ~peak_ok),
        (10, (tp * cp) % col["embedding_tp"] != 0),
    ]
    n = np.broadcast(*[np.asarray(v) for k, v in col.items() if k not in _STRING_KEYS]).shape
    code = np.zeros(n, dtype=np.int16)
    for c, bad in reversed(checks):
        code = np.where(bad, c, code)
    return code


def _forward(model: ModelSpec, mach: dict[str, Machine], net: comm.Network, phase: str, batch: Array,
             q_len: Array, kv_len: Array, col: dict[str, Array], byt: dict[str, Array],
             overlap: bool, mixed_seqs: Array = 0.0, mixed_len: Array = 0.0) -> dict[str, Cost | Array]:
    """One forward pass of one (micro-)batch through all layers: Cost per layer type (whole model).
    ``mixed_seqs`` prompts of ``mixed_len`` tokens ride along a decode pass (continuous batching)."""
    def work(kind: str, tp: Array) -> layers.Work:
        return layers.Work(phase, batch, q_len, kv_len, byt[f"{kind}_w"], byt["a"], byt["kv"],
                           tp=tp, cp=col["cp"], sp=col["sp"], ep=col["ep"], mixed_prefill_seqs=mixed_seqs,
                           mixed_prefill_len=mixed_len)
    L = model.num_hidden_layers
    attn = layers.attention(model, mach["attention"], work("attention", col["tp"]), net)
    ffn = layers.feedforward(model, mach["feedforward"], work("feedforward", col["tp"]), net)
    nrm = layers.norm(model, mach["attention"], work("attention", col["tp"]))
    rows = batch  # the LM head runs on the last position of each sequence
    emb = layers.embedding(model, mach["embedding"], work("embedding", col["embedding_tp"]), net, rows)
    fin = layers.final_norm(model, mach["attention"], rows, byt["a"])
    total = Cost()  # only what the results table reads from the total
    for part, times in ((attn, L), (ffn, L), (nrm, 2 * L), (emb, 1), (fin, 1)):
        total.add(part, times, TOTAL_SLOTS)
    norm_all = Cost().add(nrm, 2 * L).add(fin)
    return {
        "attention": attn, "feedforward": ffn, "norm": norm_all, "embedding": emb, "total": total,
        "latency_s": L * (_exposed(attn, overlap) + _exposed(ffn, overlap)) + 2 * L * nrm.latency_s
        + _exposed(emb, overlap) + fin.latency_s,
    }


def _bound(c: Cost) -> np.ndarray:
    """Index into BOUNDS of the largest share of the phase: compute-bound kernels, memory-bound
    kernels, communication, or fixed per-kernel overhead."""
    parts = np.stack(np.broadcast_arrays(c.compute_bound_s, c.busy_s - c.compute_bound_s, c.comm_s,
                                         c.overhead_s))
    return np.argmax(parts, axis=0).astype(np.int8)


def evaluate(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile,
             col: dict[str, Array], enforce_max_position: bool = True) -> dict[str, np.ndarray]:
    """Results-table metrics for every point of ``col`` (see module docstring for definitions).

    ``col`` keys: batch_size input_seq output_seq tp pp dp ep cp sp (numbers) and dtype kv_dtype
    (strings); optional embedding_tp (default tp), attention_dtype / feedforward_dtype (default dtype).
    """
    col = {k: (np.asarray(v, dtype=float) if k not in _STRING_KEYS else v) for k, v in col.items()}
    col.setdefault("embedding_tp", col["tp"])
    for kind in ("attention", "feedforward", "embedding"):
        col.setdefault(f"{kind}_dtype", col["dtype"])
    peaks = {k: v * 1e12 for k, v in hw.device.peak_tflops.items()}
    mach, byt, peak_ok = {}, {}, True
    for kind in ("attention", "feedforward", "embedding"):
        peak = _lookup(col[f"{kind}_dtype"], peaks)
        peak_ok = peak_ok & np.isfinite(peak)
        mach[kind] = Machine(np.where(np.isfinite(peak), peak, 1.0), hw.device.hbm_bandwidth_bytes_per_s,
                             hw.device.compute_units, eff, serving.kernels)
        byt[f"{kind}_w"] = _lookup(col[f"{kind}_dtype"], BYTES_PER_ELEMENT)
    byt["a"] = _lookup(col["dtype"], ACTIVATION_BYTES)
    byt["kv"] = _lookup(col["kv_dtype"], BYTES_PER_ELEMENT)
    peak_ok = peak_ok & np.isfinite(byt["kv"])
    net = comm.Network.of(hw, eff)
    code = invalid_codes(model, hw, eff, col, peak_ok, enforce_max_position)
    valid = code == 0

    B, S, O, pp, dp = col["batch_size"], col["input_seq"], col["output_seq"], col["pp"], col["dp"]  # noqa: E741
    stage_devices = col["tp"] * col["cp"]
    cross = stage_devices * pp > net.domain_size  # pipeline hops leave the scale-up domain
    mb = np.where(pp > 1, np.minimum(pp, B), 1.0)
    h_bytes = model.hidden_size * byt["a"]

    pre = _forward(model, mach, net, "prefill", B / mb, S, S, col, byt, serving.comm_overlap)
    p2p_pre = comm.p2p(net, B / mb * S / col["cp"] * h_bytes, cross)
    ttft_s = pre["latency_s"] * (1 + (mb - 1) / pp) + (pp - 1) * p2p_pre
    kv_mean = S + np.maximum(O, 2) / 2.0
    continuous = serving.batching == "continuous"
    mixed = B / mb / O if continuous else 0.0
    dec = _forward(model, mach, net, "decode", B / mb, 1.0, kv_mean, col, byt, serving.comm_overlap,
                   mixed_seqs=mixed, mixed_len=S if continuous else 0.0)
    tpot_s = dec["latency_s"] + (pp - 1) * comm.p2p(net, (B + mixed * S) / mb * h_bytes, cross)
    if continuous:
        alone = _forward(model, mach, net, "prefill", 1.0, S, S, col, byt, serving.comm_overlap)
        ttft_s = alone["latency_s"] + (pp - 1) * comm.p2p(net, S / col["cp"] * h_bytes, cross) + tpot_s
    e2e_s = ttft_s + (O - 1) * tpot_s

    devices = stage_devices * pp * dp
    out: dict[str, np.ndarray] = {"num_devices": devices}
    out["ttft_ms"] = ttft_s * 1e3
    out["tpot_ms"] = tpot_s * 1e3
    out["e2e_latency_ms"] = e2e_s * 1e3
    out["throughput_tokens_per_s"] = dp * B / tpot_s if continuous else dp * B * O / e2e_s
    out["throughput_tokens_per_s_per_device"] = out["throughput_tokens_per_s"] / devices
    out["decode_throughput_tokens_per_s"] = dp * B / tpot_s
    out["tokens_per_s_per_user"] = 1.0 / tpot_s

    w = memory.weight_bytes(model, col["tp"], col["ep"], col["embedding_tp"], pp, byt["embedding_w"],
                            byt["attention_w"], byt["feedforward_w"])
    kv = memory.kv_cache_bytes(model, B, S + O, col["tp"], pp, col["cp"], byt["kv"])
    act = memory.activation_bytes(model, B, S, col["tp"], col["ep"], col["cp"], col["embedding_tp"], byt["a"],
                                  serving.max_prefill_tokens)
    total = w + kv + act
    usable = hw.device.memory_bytes * (1 - serving.memory_reserve_fraction)
    out["weights_gb_per_device"] = w / GB
    out["kv_cache_gb_per_device"] = kv / GB
    out["activation_gb_per_device"] = act / GB
    out["memory_gb_per_device"] = total / GB
    out["usable_memory_gb_per_device"] = np.broadcast_to(usable / GB, np.shape(total))
    fits = valid & (total <= usable)
    out["fits"] = fits
    out["valid"] = valid
    out["invalid_code"] = code
    act_token = memory.activation_per_token(model, col["tp"], col["ep"], col["cp"], byt["a"])
    logits_seq = model.vocab_size / col["embedding_tp"] * 4.0
    biggest = memory.max_batch_size(usable, w, kv / B, act_token, logits_seq, S, serving.max_prefill_tokens)
    out["max_batch_size"] = np.where(valid, biggest, 0).astype(np.int64)
    # KV budget: what is left for the cache at the largest batch (weights, activations out)
    budget = usable - w - np.minimum(biggest * S, serving.max_prefill_tokens) * act_token - biggest * logits_seq
    out["kv_cache_budget_gb_per_device"] = np.maximum(budget, 0) / GB

    for phase, res in (("prefill", pre), ("decode", dec)):
        for kind in layers.LAYER_TYPES:
            c = res[kind]
            times = model.num_hidden_layers if kind in ("attention", "feedforward") else 1
            out[f"{phase}_{kind}_ms"] = times * c.latency_s * 1e3
        tot: Cost = res["total"]
        out[f"{phase}_comm_ms"] = tot.comm_s * 1e3
        out[f"{phase}_flops"] = tot.flops * mb / pp  # one device: its stage's layers, every micro-batch
        out[f"{phase}_bytes"] = tot.bytes * mb / pp
        out[f"{phase}_bound"] = _bound(tot)  # index into BOUNDS
    n = np.shape(total)
    for k, v in out.items():
        v = np.broadcast_to(v, n)
        if v.dtype.kind == "f" and k not in ("usable_memory_gb_per_device", "num_devices"):
            v = np.where(valid, v, np.nan) if not k.endswith("gb_per_device") else v
        out[k] = v
    return out


_STRING_KEYS = ("dtype", "kv_dtype", "attention_dtype", "feedforward_dtype", "embedding_dtype")


def layer_cost(model: ModelSpec, hw: HardwareSpec, eff: EfficiencyProfile, serving: ServingProfile, layer_type: str,
               phase: str, batch: Array, seq_length: Array, kv_length: Array, tp: Array = 1, cp: Array = 1,
               sp: Array = 1, ep: Array = 1, dtype: str = "bf16", kv_dtype: str | None = None) -> Cost:
    """One instance of ``layer_type`` on one device (the per-layer breakdown behind ``evaluate``).

    prefill: batch x seq_length new tokens attending causally to themselves;
    decode: batch new tokens, each attending to a cache of kv_length tokens.
    """
    peak = hw.device.peak_flops_per_s(dtype)
    kv_dtype = kv_dtype or dtype
    m = Machine(peak, hw.device.hbm_bandwidth_bytes_per_s, hw.device.compute_units, eff, serving.kernels)
    net = comm.Network.of(hw, eff)
    q_len, kv_len = (seq_length, seq_length) if phase == "prefill" else (1.0, kv_length)
    w = layers.Work(phase, batch, q_len, kv_len, BYTES_PER_ELEMENT[dtype], ACTIVATION_BYTES[dtype],
                    BYTES_PER_ELEMENT[kv_dtype], tp=tp, cp=cp, sp=sp, ep=ep)
    if layer_type == "attention":
        return layers.attention(model, m, w, net)
    if layer_type == "feedforward":
        return layers.feedforward(model, m, w, net)
    if layer_type == "norm":
        return layers.norm(model, m, w)
    return layers.embedding(model, m, w, net, logits_rows=batch)
