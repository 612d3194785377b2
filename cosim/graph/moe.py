"""MLP blocks of decoder LMs: the dense (gated or not) MLP and the mixture-of-experts layer.

Expected experts touched. With uniform routing each token picks `k` distinct experts out of `E`, so
a given expert is missed by one token with probability exactly 1 - k/E and by T independent tokens
with probability (1 - k/E)^T. A chip holding E_chip experts therefore touches, in expectation,

    E_touched = E_chip x (1 - (1 - k/E)^T)

of them (T = 1 gives E_chip k / E, i.e. k when one chip holds all experts; T -> infinity gives
E_chip). Only touched experts' weights are read; each touched expert runs a GEMM of
m = T k (E_chip / E) / E_touched tokens (the expected tokens per touched expert). This is neither
"all experts" nor "just top-k" and is what makes small-batch MoE decode memory-cheap.

With experts spread over chips (ep > 1) the table describes the slowest EP rank. When few tokens are
routed, its group touches more experts than the mean (`cosim.graph.expert_load`: exact for uniform routing,
3.51 against 2 of DeepSeek-R1's 256 experts over 4 groups at one token, 1.00 once every expert is touched);
its touched experts and assignments scale by that ratio. Routing imbalance beyond uniform routing
(`scenario.routing_imbalance`, max/mean load) scales its work further. With ep = 1 every chip holds every
expert (TP-sharded), so neither changes its total work.

EP dispatch and combine are all-to-alls, needed only where the tokens of several data-parallel replicas
meet at the experts (ep > tp): each chip's share of tokens (T / tp: TP ranks split the replicated tokens)
x k x hidden x (ep - 1) / ep elements, the part that leaves the chip; dispatch moves them at the GEMM
input's width (at least FP8: DeepEP dispatches FP8 for FP8/FP4 models), combine at the activation
stream's (BF16). With ep <= tp every chip of the TP group already holds all of the replica's tokens: it
runs its experts on the tokens routed to them and the layer's TP all-reduce sums the expert outputs, so
there is no exchange (TensorRT-LLM's fused MoE without attention DP; vLLM's expert parallelism at dp = 1).
The SwiGLU/GELU activation is fused into the gate/up GEMM's epilogue (a `fused` row with its FLOPs).
The router's top-k selection is not counted (well under 0.01% of the FLOPs).

Token shuffling. Grouped GEMMs need each expert's tokens contiguous, so a MoE layer also moves every
(token, expert) assignment through memory twice outside the GEMMs: a permute that gathers each assigned
token's row into expert order at the GEMM input's width, and a combine that reads the k expert outputs
of each token back (BF16), weights and sums them into one row (NVIDIA/TensorRT-LLM
cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm/moe_kernels.cu: expandInputRowsKernel and
finalizeMoeRoutingKernel; vLLM's fused_moe sums the k outputs in moe_sum). These are memory-bound
passes of k x hidden elements per token: negligible next to Mixtral's wide experts (k = 2), but for
fine-grained MoE (k = 8 of 128-256 narrow experts) they move about as many bytes as the expert GEMMs
do FLOPs at an FP4/FP8 ridge point.
"""

from __future__ import annotations

import numpy as np

from cosim.graph.expert_load import busiest_group_ratio
from cosim.graph.optable import CommKind, OpKind, Stage
from cosim.graph.rows import (
    ACT_FLOPS_PER_ELEMENT,
    GATE_MULTIPLY_FLOPS,
    GATED_ACTIVATION,
    Dtypes,
    comm,
    elementwise,
    gemm,
)
from cosim.graph.sharding import Mapping
from cosim.specs.workload import DecoderLM, Mlp


def expected_experts_touched(num_experts: int, experts_per_token: int, tokens: float,
                             experts_on_chip: float | None = None) -> float:
    """E_chip x (1 - (1 - k/E)^T): distinct experts a batch of T uniformly routed tokens touches on a chip."""
    e_chip = num_experts if experts_on_chip is None else experts_on_chip
    if tokens <= 0:
        return 0.0
    return float(e_chip) * (1.0 - (1.0 - experts_per_token / num_experts) ** tokens)


def activation_flops_per_element(mlp: Mlp) -> float:
    """Activation (+ gate multiply when gated) FLOPs per intermediate element."""
    flops = ACT_FLOPS_PER_ELEMENT[GATED_ACTIVATION[mlp.kind]]
    return flops + (GATE_MULTIPLY_FLOPS if mlp.gated else 0.0)


#: FLOPs per element of the combine: scale by the routing weight, add into the token's row
COMBINE_FLOPS_PER_ELEMENT = 2.0


#: rows whose work follows the expert assignments a rank receives from every attention-DP rank (the token
#: shuffle and the routed experts' GEMMs), not the tokens the rank itself carries
EXPERT_ASSIGNMENT_ROWS = ("moe.permute", "moe.experts.", "moe.combine")


#: the router GEMM, one row per MoE layer of a table (its repeat counts the MoE layers the table covers)
ROUTER_ROW = "moe.router"


def moe_layer_count(table) -> float:
    """MoE layers an op table covers: the summed repeat of its router rows (0 for a dense model)."""
    return float(sum(r for name, r in zip(table.name, table.repeat, strict=True) if name == ROUTER_ROW))


def expert_assignment_mask(table) -> np.ndarray:
    """Which rows of an op table are expert-assignment work (`EXPERT_ASSIGNMENT_ROWS`)."""
    return np.array([name.startswith(EXPERT_ASSIGNMENT_ROWS) for name in table.name], dtype=bool)


def token_shuffle_rows(dt: Dtypes, assignments: float, k: int, hidden: int, repeat: float) -> list[dict]:
    """The permute into expert order (reads each assignment's token row, writes it at the GEMM input's width)
    and the combine (reads the k BF16 expert outputs of each token, writes one row)."""
    elements = assignments * hidden
    permute = elementwise("moe.permute", Stage.DECODER, dt, elements, 0.0, repeat=repeat)
    permute["bytes_act_out"] = elements * dt.dispatch
    combine = elementwise("moe.combine", Stage.DECODER, dt, elements, COMBINE_FLOPS_PER_ELEMENT,
                          outputs=1.0 / k, repeat=repeat)
    return [permute, combine]


def mlp_rows(prefix: str, stage: Stage, dt: Dtypes, mlp: Mlp, tokens: float, hidden: int, width: float,
             repeat: float) -> list[dict]:
    """Gate+up as one GEMM (n = 2 x width when gated), the fused activation, the down GEMM. `width` per chip."""
    up = (2 if mlp.gated else 1) * width
    return [
        gemm(f"{prefix}.gate_up_proj" if mlp.gated else f"{prefix}.up_proj", stage, dt, tokens, hidden, up,
             bias=mlp.bias, repeat=repeat),
        elementwise(f"{prefix}.act", stage, dt, tokens * width, activation_flops_per_element(mlp), fused=True,
                    repeat=repeat),
        gemm(f"{prefix}.down_proj", stage, dt, tokens, width, hidden, bias=mlp.bias, repeat=repeat),
    ]


def moe_rows(model: DecoderLM, dt: Dtypes, m: Mapping, tokens: float, imbalance: float,
             repeat: float, touch_all: bool = False) -> list[dict]:
    """Router, shared experts, routed experts (grouped GEMM over touched experts) and EP all-to-alls.

    `touch_all` makes every local expert count as touched (used to size the resident weights).
    """
    moe, h, mlp = model.moe, model.hidden_size, model.mlp
    E, k = moe.num_experts, moe.experts_per_token
    rest = dt.outside_experts  # router and shared experts run with the non-expert GEMMs
    rows = [gemm(ROUTER_ROW, Stage.DECODER, rest, tokens, h, E, bias=moe.router_bias, repeat=repeat)]
    if moe.num_shared_experts:
        width = moe.num_shared_experts * (moe.shared_expert_intermediate_size or moe.expert_intermediate_size)
        rows += mlp_rows("moe.shared", Stage.DECODER, rest, mlp, tokens, h, width / m.tp, repeat)

    pooled = tokens * m.ep_token_pool
    e_chip = E / m.ep
    touched = e_chip if touch_all else expected_experts_touched(E, k, pooled, e_chip)
    # the busiest EP group touches more than the mean when few tokens are routed (cosim.graph.expert_load)
    busiest = 1.0 if touch_all else busiest_group_ratio(E, k, pooled, m.ep)
    touched *= busiest
    assignments = pooled * k * e_chip / E * busiest * (imbalance if m.ep > 1 else 1.0)
    per_expert = assignments / touched
    width = moe.expert_intermediate_size / m.expert_tp
    up = (2 if mlp.gated else 1) * width
    exchange = m.ep_token_pool > 1  # tokens of other replicas come in (ep > tp); else the TP all-reduce combines
    if exchange:
        send = tokens / m.tp * k * h * (m.ep - 1) / m.ep  # elements that leave the chip
        rows.append(comm("moe.ep_dispatch", Stage.DECODER, dt, CommKind.ALL_TO_ALL, send * dt.dispatch, m.ep,
                         repeat=repeat))
    permute, combine = token_shuffle_rows(dt, assignments, k, h, repeat)
    rows += [
        permute,
        gemm("moe.experts.gate_up_proj" if mlp.gated else "moe.experts.up_proj", Stage.DECODER, dt, per_expert,
             h, up, groups=touched, bias=mlp.bias, kind=OpKind.GROUPED_GEMM, repeat=repeat),
        elementwise("moe.experts.act", Stage.DECODER, dt, assignments * width,
                    activation_flops_per_element(mlp), fused=True, repeat=repeat),
        gemm("moe.experts.down_proj", Stage.DECODER, dt, per_expert, width, h, groups=touched, bias=mlp.bias,
             kind=OpKind.GROUPED_GEMM, repeat=repeat),
        combine,
    ]
    for row in rows:  # the busiest group's work sets the time; the energy counts the groups' mean
        if row["name"].startswith(EXPERT_ASSIGNMENT_ROWS):
            row["work_share"] = 1.0 / busiest
    if exchange:
        rows.append(comm("moe.ep_combine", Stage.DECODER, dt, CommKind.ALL_TO_ALL, send * dt.a, m.ep, repeat=repeat))
    return rows
