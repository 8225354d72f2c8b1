"""Feedforward blocks: ``DenseMLP`` (gated SwiGLU/GeGLU or plain) and ``MoEMLP`` (top-k routed experts).

Kernels per device: ``gate_up_proj`` (``up_proj`` when not gated), ``act_mul`` (``act``), ``down_proj``,
``all_reduce``; MoE adds ``router`` and runs ``experts_gate_up`` / ``experts_down`` as grouped GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

from mantile.costs import comm
from mantile.costs.blocks import Plan, Work
from mantile.costs.kernels import Array, Cost, Machine, gemm


@dataclass(frozen=True)
class DenseMLP:
    """[gate|up] GEMM (n x h @ h x 2f/tp), activation, down GEMM (n x f/tp @ f/tp x h), all-reduce.

    Parameters per device: (3 gated, 2 plain) x h x f / tp. Activation peak per token: up to 3 f/tp
    (gate, up and their product)."""

    hidden_size: int
    intermediate_size: int
    gated: bool
    layer_type: str = "feedforward"

    @property
    def matrices(self) -> int:
        return 3 if self.gated else 2

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

    def kv_values_per_token(self, plan: Plan) -> Array:
        return 0.0

    def activation_values_per_token(self, plan: Plan) -> Array:
        return 3 * self.intermediate_size / (plan.tp / plan.ep)


@dataclass(frozen=True)
class MoEMLP:
    """Mixture of experts (E experts, top-k, balanced routing), experts split over ep, then tp/ep inside.

    Router GEMM (n x h @ h x E); each of the E/ep local experts gets n*k/E rows; a local expert's weights
    are read if at least one token picks it (expected fraction 1 - (1 - k/E)^n); the expert outputs
    are combined by the all-reduce over the tp*ep group. Parameters per device: E/ep experts, each
    split over tp/ep, plus the replicated router (h x E). Activation peak per token: a token's k expert
    rows spread over the ep devices, k/ep rows of up to 3 f/(tp/ep) values.
    """

    hidden_size: int
    intermediate_size: int
    gated: bool
    num_experts: int
    experts_per_token: int
    layer_type: str = "feedforward"

    @property
    def matrices(self) -> int:
        return 3 if self.gated else 2

    def cost(self, m: Machine, w: Work, net: comm.Network) -> Cost:
        c, h, n = Cost(), self.hidden_size, w.tokens
        f = self.intermediate_size / (w.tp / w.ep)
        up_cols = f * (2 if self.gated else 1)
        experts, k = self.num_experts, self.experts_per_token
        local = experts / w.ep
        gemm(c, m, n, experts, h, w.w_bytes, w.a_bytes, name="router")
        rows = n * k / experts
        touched = local * (1.0 - (1.0 - k / experts) ** n)
        gemm(c, m, rows, up_cols, h, w.w_bytes, w.a_bytes, groups=local, weight_groups=touched, name="experts_gate_up")
        act_elems = n * k / w.ep * f
        c.elementwise(m, "act_mul", m.stack.activation_traffic * act_elems * w.a_bytes, m.stack.activation_kernels)
        gemm(c, m, rows, h, f, w.w_bytes, w.a_bytes, groups=local, weight_groups=touched, name="experts_down")
        out = n * h * w.a_bytes
        c.comm("all_reduce", out, comm.all_reduce(net, out, w.tp))
        return c

    def params(self, plan: Plan) -> Array:
        expert = self.matrices * self.hidden_size * self.intermediate_size
        return self.num_experts / plan.ep * expert / (plan.tp / plan.ep) + self.hidden_size * self.num_experts

    def kv_values_per_token(self, plan: Plan) -> Array:
        return 0.0

    def activation_values_per_token(self, plan: Plan) -> Array:
        routed = self.experts_per_token / plan.ep
        return 3 * (self.intermediate_size / (plan.tp / plan.ep) * routed)

