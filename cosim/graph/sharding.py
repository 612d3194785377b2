"""Resolve and validate a scenario's parallelism against a workload: what one chip holds and computes.

Rules (an impossible mapping raises `CosimInputError` naming the `parallelism.*` field):

- TP splits attention heads and MLP width. `num_heads % tp` must be 0. KV heads are split when
  `num_kv_heads >= tp` (then `num_kv_heads % tp` must be 0) and replicated when fewer than `tp`
  (then `tp % num_kv_heads` must be 0): `kv_heads_per_chip = max(1, kv_heads / tp)`, as in vLLM and
  Megatron. Norms, embeddings lookups, MoE routers and MLA's down-projections are replicated.
- PP splits layers into `pp` contiguous stages; an uneven split gives the first `L % pp` stages one
  extra layer. `pp > layers` is an error.
- EP places `num_experts / ep` experts on each chip; EP reuses the TP x DP chips (it never adds
  chips), so `ep` must divide `tp * dp`. When `ep <= tp` (and `tp % ep == 0`) each expert's width is
  further split over `tp / ep` chips; when `ep > tp` (and `ep % tp == 0`) an EP group spans `ep / tp`
  data-parallel replicas whose tokens meet at the experts. `ep > num_experts`, `num_experts % ep`,
  and `ep > 1` on a model without experts are errors.
- VPP (training only) interleaves the pipeline: each of the `pp` chips holds `vpp` chunks of layers, so
  the model is cut into pp x vpp chunks of at least one layer each; `vpp > 1` needs `pp > 1`.
- DP splits the batch: `batch % dp` must be 0 (video: the batch after CFG doubling).
- Hybrid models: TP splits the Mamba-2 heads too (`mamba.num_heads % tp` must be 0; groups split when TP
  divides them, else every chip computes all of them); SP over their Mamba-2 layers is not modelled.
- SP/CP splits the sequence (prefill, train, video tokens; a remainder is padded, so tokens per chip
  are `ceil(tokens / sp)`). Ulysses re-shards by heads for attention, so `num_heads % (tp * sp)` must
  be 0; ring attention has no such constraint. In decode SP splits the cached context instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cosim.errors import CosimInputError
from cosim.specs.scenario import Scenario
from cosim.specs.workload import DecoderLM, VideoDiT


@dataclass(frozen=True)
class Mapping:
    """The validated parallel degrees plus derived per-chip quantities."""

    tp: int
    pp: int
    ep: int
    dp: int
    sp: int
    sp_kind: str
    expert_tp: int  # chips one expert's width is split over (tp / ep when ep <= tp, else 1)
    ep_token_pool: int  # data-parallel replicas whose tokens reach one chip's experts (ep / tp when ep > tp)
    sp_ring: int = 1  # ranks of sp passing K/V around a ring (sp for ring attention; 1 < sp_ring < sp: USP)

    @property
    def sp_ulysses(self) -> int:
        """Ranks of sp splitting the heads by all-to-all (1 for pure ring attention)."""
        return self.sp // self.sp_ring


def _err(field: str, message: str) -> CosimInputError:
    return CosimInputError(message, field=f"parallelism.{field}")


def check_heads(heads: int, kv_heads: int, tp: int, sp: int, sp_kind: str, *, sequence_split: bool,
                what: str = "attention") -> None:
    """TP (and Ulysses SP) must divide the heads; KV heads split or replicate evenly."""
    if heads % tp:
        raise _err("tp", f"tp={tp} does not divide {what}.num_heads={heads}")
    if kv_heads >= tp and kv_heads % tp:
        raise _err("tp", f"tp={tp} does not divide {what}.num_kv_heads={kv_heads}")
    if kv_heads < tp and tp % kv_heads:
        raise _err("tp", f"tp={tp} is not a multiple of {what}.num_kv_heads={kv_heads} (KV heads "
                         "are replicated when fewer than tp)")
    if sequence_split and sp > 1 and sp_kind == "ulysses" and heads % (tp * sp):
        raise _err("sp", f"Ulysses sp={sp} x tp={tp} does not divide {what}.num_heads={heads}; "
                         "use ring attention, a Ulysses x ring hybrid (sp_ring) or a smaller degree")


def stage_layer_ranges(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) layer ranges of the `pp` pipeline stages (first stages take the remainder)."""
    if pp > num_layers:
        raise _err("pp", f"pp={pp} exceeds the number of layers ({num_layers})")
    base, extra = divmod(num_layers, pp)
    ranges, start = [], 0
    for s in range(pp):
        size = base + (1 if s < extra else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


#: chunks beyond the layers an interleaved pipeline may have: Megatron-LM can give the embedding and the loss
#: a chunk each (--account-for-embedding-in-pipeline-split, --account-for-loss-in-pipeline-split), as NVIDIA's
#: Llama 3.1 405B recipes do with PP16 x VP8 = 128 chunks over 126 layers
EXTRA_PIPELINE_CHUNKS = 2


def check_interleaving(num_layers: int, scenario: Scenario) -> None:
    """An interleaved pipeline (vpp > 1) is a training schedule over pp > 1 stages of >= 1 layer per chunk
    (or the embedding or the loss)."""
    par = scenario.parallelism
    if par.vpp == 1:
        return
    if scenario.phase != "train":
        raise _err("vpp", f"vpp={par.vpp} interleaves a training pipeline; phase '{scenario.phase}' takes vpp=1")
    if par.pp == 1:
        raise _err("vpp", f"vpp={par.vpp} needs pipeline stages to interleave (pp > 1), got pp=1")
    if par.pp * par.vpp > num_layers + EXTRA_PIPELINE_CHUNKS:
        raise _err("vpp", f"pp={par.pp} x vpp={par.vpp} chunks exceed the number of layers ({num_layers}) "
                          f"plus the embedding and the loss")


def resolve(workload: DecoderLM | VideoDiT, scenario: Scenario) -> Mapping:
    """Validate the scenario's parallelism for this workload and derive the per-chip mapping."""
    par = scenario.parallelism
    tp, pp, ep, dp, sp = par.tp, par.pp, par.ep, par.dp, par.sp
    check_interleaving(workload.dit.num_layers if isinstance(workload, VideoDiT) else workload.num_layers, scenario)
    if isinstance(workload, VideoDiT):
        dit = workload.dit
        ring, uly = par.ring_degree, par.ulysses_degree
        if 1 < ring < sp and dit.num_heads % (tp * uly):
            raise _err("sp_ring", f"the Ulysses degree sp / sp_ring = {sp} / {ring} = {uly} x tp={tp} does not "
                                  f"divide dit.num_heads={dit.num_heads}; use a larger sp_ring")
        check_heads(dit.num_heads, dit.num_heads, tp, uly, "ulysses" if uly > 1 else "ring", sequence_split=True,
                    what="dit")
        stage_layer_ranges(dit.num_layers, pp)
        if ep > 1:
            raise _err("ep", f"ep={ep} exceeds the number of experts (0): video DiTs have no experts")
        return Mapping(tp, pp, ep, dp, sp, par.sp_kind, tp, 1, ring)

    if par.sp_ring is not None and 1 < par.sp_ring < sp:
        raise _err("sp_ring", f"sp_ring={par.sp_ring}: a Ulysses x ring hybrid is modelled for video DiTs only; "
                              "use sp_kind ulysses or ring")
    att = workload.attention
    seq_split = scenario.phase in ("prefill", "train", "generate")
    kv_heads = att.num_heads if att.kind == "mla" else att.num_kv_heads
    check_heads(att.num_heads, kv_heads, tp, sp, par.sp_kind, sequence_split=seq_split)
    if workload.mamba is not None:
        if workload.mamba.num_heads % tp:
            raise _err("tp", f"tp={tp} does not divide mamba.num_heads={workload.mamba.num_heads}")
        if sp > 1:
            raise _err("sp", f"sp={sp}: sequence parallelism over Mamba-2 layers (a scan along the sequence) "
                             "is not modelled; use sp=1")
    stage_layer_ranges(workload.num_layers, pp)
    if scenario.batch % dp:
        raise _err("dp", f"dp={dp} does not divide the batch ({scenario.batch})")
    expert_tp, pool = tp, 1
    if ep > 1:
        experts = workload.moe.num_experts if workload.moe else 0
        if ep > experts:
            raise _err("ep", f"ep={ep} exceeds the number of experts ({experts})")
        if experts % ep:
            raise _err("ep", f"ep={ep} does not divide the number of experts ({experts})")
        if (tp * dp) % ep:
            raise _err("ep", f"ep={ep} must divide tp x dp = {tp * dp} (EP reuses the TP x DP chips)")
        if ep <= tp:
            if tp % ep:
                raise _err("ep", f"ep={ep} must divide tp={tp} when ep <= tp")
            expert_tp = tp // ep
        else:
            if ep % tp:
                raise _err("ep", f"ep={ep} must be a multiple of tp={tp} when ep > tp")
            expert_tp, pool = 1, ep // tp
    return Mapping(tp, pp, ep, dp, sp, par.sp_kind, expert_tp, pool, par.ring_degree)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def kv_heads_per_chip(kv_heads: int, tp: int) -> int:
    """KV heads on one chip: split when there are at least `tp`, else one replicated head."""
    return max(1, kv_heads // tp)


def local_fraction(total: float, parts: int) -> float:
    """Share of `total` items on one of `parts` chips with padding (ceil), as a float."""
    return float(math.ceil(total / parts))
