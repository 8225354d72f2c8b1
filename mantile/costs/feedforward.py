"""Feedforward blocks: ``DenseMLP`` (gated SwiGLU/GeGLU or plain) and ``MoEMLP`` (top-k routed experts,
optionally with shared experts: DeepSeekMoE, Llama 4).

Kernels per device: ``gate_up_proj`` (``up_proj`` when not gated), ``act_mul`` (``act``), ``down_proj``,
``all_reduce``; MoE adds ``router``, runs ``experts_gate_up`` / ``experts_down`` as grouped GEMMs (with
``experts_routing``, the fused-MoE op's fixed time beyond them where an engine's tables fit one), the
shared experts as ``shared_gate_up`` / ``shared_down``, and with data-parallel attention exchanges
tokens by ``ep_dispatch`` / ``ep_combine`` all-to-alls (``costs.dispatch``) instead of the all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mantile.costs import comm
from mantile.costs.blocks import Plan, Work
from mantile.costs.dispatch import ep_all_to_all, mode_of
from mantile.costs.kernels import Array, Cost, Machine, any_, gemm


class _Matrices:
    """Mixin: weight matrices of one MLP: gate, up and down (gated) or up and down."""

    gated: bool

    @property
    def matrices(self) -> int:
        return 3 if self.gated else 2


@dataclass(frozen=True)
class DenseMLP(_Matrices):
    """[gate|up] GEMM (n x h @ h x 2f/tp), activation, down GEMM (n x f/tp @ f/tp x h), all-reduce.

    Parameters per device: (3 gated, 2 plain) x h x f / tp. Activation peak per token: up to 3 f/tp
    (gate, up and their product)."""

    hidden_size: int
    intermediate_size: int
    gated: bool
    layer_type: str = "feedforward"

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h, n = Cost(), self.hidden_size, w.tokens
        f = self.intermediate_size / (w.tp / w.ep)
        gemm(c, m, n, f * (2 if self.gated else 1), h, w.w_bytes, w.a_bytes,
             name="gate_up_proj" if self.gated else "up_proj")
        traffic = m.stack.activation_traffic if self.gated else 2.0
        kernels = m.stack.activation_kernels if self.gated else 1
        c.elementwise(m, "act_mul" if self.gated else "act", traffic * n * f * w.a_bytes, kernels)
        gemm(c, m, n, h, f, w.w_bytes, w.a_bytes, name="down_proj")
        out = n * h * w.a_bytes
        c.comm("all_reduce", out, comm.all_reduce(net, out, w.tp))
        return c

    def params(self, plan: Plan) -> Array:
        return 1.0 * self.matrices * self.hidden_size * self.intermediate_size / (plan.tp / plan.ep)

    def kv_values(self, plan: Plan, context: Array) -> Array:
        return 0.0

    def activation_values_per_token(self, plan: Plan) -> Array:
        return 3 * self.intermediate_size / (plan.tp / plan.ep)

    def active_params(self) -> float:
        return float(self.params(Plan()))


def slice_scale(f_device: Array, f_full: Array, w_half: Array) -> Array:
    """A grouped (MoE expert) GEMM's efficiency on a device holding an ``f_device``-wide slice of each expert, over
    the whole expert's (``f_full`` wide): w / (w + w_half) over f / (f + w_half) (the tile's fixed work amortized
    over fewer columns, as ``gemm_k_half`` over depth); 1 where ``w_half`` is 0 (not fitted)."""
    w_half = np.asarray(w_half, dtype=float)
    if not any_(w_half > 0):
        return 1.0
    return np.where(w_half > 0, (f_device / (f_device + w_half)) / (f_full / (f_full + w_half)), 1.0)


@dataclass(frozen=True)
class MoEMLP(_Matrices):
    """Mixture of experts (E experts, top-k, balanced routing), experts split over ep, then tp/ep inside.

    Router GEMM (n x h @ h x E); each of the E/ep local experts gets n*k/E rows; a local expert's weights
    are read if at least one token picks it (expected fraction 1 - (1 - k/E)^n); the expert outputs
    are combined by the all-reduce over the tp*ep group. Parameters per device: E/ep experts, each
    split over tp/ep, plus the replicated router (h x E). Activation peak per token: a token's k expert
    rows spread over the ep devices, k/ep rows of up to 3 f/(tp/ep) values.

    Wide expert parallelism (``Work.attention_dp`` > 1, see ``blocks.Placement``): the tokens of the
    attention groups differ, so each device routes its n/R tokens and sends them to their experts'
    devices (``ep_dispatch``) and gets the outputs back (``ep_combine``), all-to-alls of n/R * k rows
    of h (dispatch in the weight format when it is 8-bit, as DeepEP's FP8 dispatch; combine in the
    activation format). When ep does not divide the E + r instances the busiest device holds
    ceil((E + r) / ep) of them (vLLM's expert map spreads the remainder). Load imbalance: the busiest
    device gets ``expert_imbalance`` x the mean rows
    (the EPLB factor; its time sets the step's); ``redundant_experts`` r replicas spread E + r expert
    instances over the ep devices (more weights, load split between replicas). The grouped GEMM's rows
    per expert (tokens x k / instances) set its efficiency (tile quantization, memory-bound when few).

    Shared experts (``shared_size`` = n_shared x expert width, DeepSeekMoE / Llama 4) are a dense MLP every
    token goes through, split over the attention group's devices. ``bias``: each expert's gate/up and
    down projections and the router carry biases (GPT-OSS).
    """

    hidden_size: int
    intermediate_size: int
    gated: bool
    num_experts: int
    experts_per_token: int
    layer_type: str = "feedforward"
    shared_size: int = 0
    bias: bool = False
    #: the block runs over the whole replica with expert parallelism (``blocks.Placement``)
    expert_parallel: bool = True

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h, n = Cost(), self.hidden_size, w.tokens
        f = self.intermediate_size / (w.tp / w.ep)
        up_cols = f * (2 if self.gated else 1)
        experts, k = self.num_experts, self.experts_per_token
        instances = experts + w.redundant_experts
        local = np.ceil(instances / w.ep)  # the busiest device (vLLM spreads a remainder over the ranks)
        router_m, router_bytes = m.kept_16bit(w.w_bytes)  # never quantized (costs.step.has_unquantized)
        gemm(c, router_m, n / w.attention_dp, experts, h, router_bytes, w.a_bytes, name="router")
        rows = n * k / instances * w.expert_imbalance
        touched = local * (1.0 - (1.0 - k / instances) ** n)
        if m.eff.expert_reads == "minimal":  # the ideal machine (serving/ideal.py): the least any routing reads
            touched = np.minimum(touched, np.ceil(k / w.ep))
        # the engine's grouped GEMM on an expert-parallel device keeps less than 1/ep of its ep = 1 time
        # (``GemmConstants.ep_efficiency``, fitted to the engines' expert-parallel MoE tables; the machine
        # holds it for the point's ep: ``costs.step.ep_scale``)
        # and on a device holding a tensor-parallel slice of each expert (f = F / (tp / ep) wide) less than the
        # whole expert's: times w / (w + w_half) over F / (F + w_half) (``GemmConstants.slice_width_half``,
        # fitted to the engines' tensor-parallel MoE tables: at tp 8 the op takes 15-50% longer than the
        # whole-expert efficiency gives at 64+ tokens per expert); the weights stream at the full rate
        scale = m.moe_ep_scale * slice_scale(f, self.intermediate_size, m.moe_slice_half)
        gemm(c, m, rows, up_cols, h, w.w_bytes, w.a_bytes, groups=local, weight_groups=touched,
             name="experts_gate_up", grouped=True, efficiency_scale=scale)
        act_elems = n * k / w.ep * f * w.expert_imbalance
        c.elementwise(m, "act_mul", m.stack.activation_traffic * act_elems * w.a_bytes, m.stack.activation_kernels)
        gemm(c, m, rows, h, f, w.w_bytes, w.a_bytes, groups=local, weight_groups=touched, name="experts_down",
             grouped=True, efficiency_scale=scale)
        if any_(m.moe_op_s):  # the fused-MoE op's routing, permute and finalize kernels: its fitted fixed time
            c.kernel(m, "experts_routing", 0.0, 0.0, 0.0, count=0.0, extra_s=m.moe_op_s)
        if self.shared_size:
            self._shared(c, m, w)
        out = n * h * w.a_bytes
        reduce_s = comm.all_reduce(net, out, w.tp)
        if np.all(np.asarray(w.attention_dp) == 1):
            c.comm("all_reduce", out, reduce_s)
            return c
        wide = np.asarray(w.attention_dp) > 1
        c.comm("all_reduce", out, np.where(wide, 0.0, reduce_s))
        tokens, mode = n / w.tp, mode_of(w.phase)
        dispatch_bytes = np.minimum(w.a_bytes, np.maximum(w.w_bytes, 1.0)) * h
        for name, row_bytes in (("ep_dispatch", dispatch_bytes), ("ep_combine", w.a_bytes * h)):
            seconds = ep_all_to_all(net, tokens, k, row_bytes, w.tp, mode)
            c.comm(name, tokens * k * row_bytes, np.where(wide, seconds, 0.0))
        return c

    def _shared(self, c: Cost, m: Machine, w: Work) -> None:
        """The shared experts: a gated MLP over the attention group's tokens, split over its devices."""
        h, group_tp = self.hidden_size, w.tp / w.attention_dp
        n, f = w.tokens / w.attention_dp, self.shared_size / group_tp
        gemm(c, m, n, f * (2 if self.gated else 1), h, w.w_bytes, w.a_bytes, name="shared_gate_up")
        c.elementwise(m, "shared_act_mul", m.stack.activation_traffic * n * f * w.a_bytes, m.stack.activation_kernels)
        gemm(c, m, n, h, f, w.w_bytes, w.a_bytes, name="shared_down")

    @property
    def expert_params(self) -> float:
        """One expert: gate/up/down (+ gate/up and down biases)."""
        h, f = self.hidden_size, self.intermediate_size
        bias = (f * (self.matrices - 1) + h) if self.bias else 0
        return float(self.matrices * h * f + bias)

    def _router_params(self) -> float:
        return float(self.hidden_size * self.num_experts + (self.num_experts if self.bias else 0))

    def unquantized_params(self, plan: Plan) -> Array:
        """The router, stored in 16 bits whatever the experts' format (memory)."""
        return self._router_params()

    def params(self, plan: Plan) -> Array:
        expert: float = self.matrices * self.hidden_size * self.intermediate_size
        if self.bias:
            expert = self.expert_params
        routed = np.ceil((self.num_experts + plan.redundant_experts) / plan.ep) * expert / (plan.tp / plan.ep)
        total = routed + self._router_params() if self.bias else routed + self.hidden_size * self.num_experts
        if self.shared_size:
            group_tp = plan.tp if plan.group_tp is None else plan.group_tp
            total = total + self.matrices * self.hidden_size * self.shared_size / group_tp
        return total

    def active_params(self) -> float:
        """A token's k routed experts, the shared experts and the router."""
        shared = self.matrices * self.hidden_size * self.shared_size
        return self.experts_per_token * self.expert_params + shared + self._router_params()

    def kv_values(self, plan: Plan, context: Array) -> Array:
        return 0.0

    def activation_values_per_token(self, plan: Plan) -> Array:
        routed = self.experts_per_token / plan.ep
        return 3 * (self.intermediate_size / (plan.tp / plan.ep) * routed)

