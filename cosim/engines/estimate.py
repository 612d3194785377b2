"""`estimate()`: one workload on one hardware spec under one scenario -> an `EstimateResult`.

The result carries every key of the `cosim estimate --format json` contract as an attribute
(`to_dict()` returns exactly those keys, None where a key does not apply), the per-op breakdown as a
DataFrame and the raw per-chip, per-step counters the energy model needs. It is computed by the same
kernel as sweeps (`evaluate_points` with N = 1); the breakdown comes from `op_kernel`, which shares
the per-op cost function.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cosim.errors import CosimInputError

CONTRACT_KEYS = (
    "feasible", "reason", "batch", "latency_s", "ttft_s", "tpot_s", "throughput_tokens_per_s",
    "seconds_per_video", "mfu", "mbu", "bottleneck", "memory_bytes_per_chip",
    "energy_j", "energy_j_per_token", "system_energy_j_per_token", "avg_power_w",
    "usd_per_million_tokens", "usd_per_video",
    # added by the energy/cost layer (beyond the original contract; never renamed)
    "facility_energy_j_per_token", "tdp_derate",
)


@dataclass
class EstimateResult:
    feasible: bool
    reason: str | None
    batch: int | None
    latency_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    throughput_tokens_per_s: float | None = None
    seconds_per_video: float | None = None
    mfu: float | None = None
    mbu: float | None = None
    bottleneck: str | None = None
    memory_bytes_per_chip: float | None = None
    energy_j: float | None = None
    energy_j_per_token: float | None = None
    system_energy_j_per_token: float | None = None
    avg_power_w: float | None = None
    usd_per_million_tokens: float | None = None
    usd_per_video: float | None = None
    facility_energy_j_per_token: float | None = None
    tdp_derate: float | None = None
    # not in the JSON contract
    # the per-op breakdown's raw columns, one entry per op table (built into `breakdown` on first use:
    # a validation or sweep asks for thousands of estimates and reads none of their breakdowns)
    breakdown_parts: list = field(default_factory=list, repr=False)
    flops_by_precision: dict[str, float] = field(default_factory=dict)
    # the FLOPs the energy model charges: compute-bound matrix ops at a GEMM's power for their time (see
    # busy_energy_flops); empty: flops_by_precision
    energy_flops_by_precision: dict[str, float] = field(default_factory=dict)
    # per chip, the seconds of a video DiT's sequence-parallel exchange, whose GPUs stay busy (see
    # sp_exchange_share); the energy model charges them at the power of the work around them
    busy_exchange_time_s: float = 0.0
    # the seconds of step_time_s a serving stack's unpriced GPU work per running sequence takes (sampler,
    # logits processing; EngineParams.per_sequence_busy_s), charged like the exchange above
    busy_sequence_time_s: float = 0.0
    bytes_main_memory: float = 0.0
    bytes_onchip: float = 0.0
    comm_bytes_scale_up: float = 0.0
    comm_bytes_scale_out: float = 0.0
    step_time_s: float = 0.0
    tokens_per_step: float = 0.0
    chips: int = 1
    phase: str = ""
    memory_breakdown: dict[str, float] = field(default_factory=dict)
    mode: str = "analytical"

    @functools.cached_property
    def breakdown(self) -> pd.DataFrame:
        """Per-op time, bound and achieved rates per chip per step (time x repeat), one row per op of each
        op table; empty when the estimate ran no table."""
        from cosim.engines.analytical import BOTTLENECKS
        from cosim.graph.optable import OpKind, Stage

        frames = []
        for key, table, time_s, bound, op_bytes in self.breakdown_parts:
            t = time_s * table.repeat
            df = pd.DataFrame({
                "graph": key, "name": table.name, "kind": [OpKind(k).name.lower() for k in table.kind],
                "stage": [Stage(s).name.lower() for s in table.stage], "repeat": table.repeat, "time_s": t,
                "bound": [BOTTLENECKS[int(b)] for b in bound],
                "flops": table.flops * table.repeat, "bytes": op_bytes * table.repeat,
            })
            with np.errstate(divide="ignore", invalid="ignore"):
                df["achieved_flops_per_s"] = np.where(t > 0, df["flops"] / t, 0.0)
                df["achieved_bytes_per_s"] = np.where(t > 0, df["bytes"] / t, 0.0)
            frames.append(df)
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        denom = out.groupby("graph")["time_s"].transform("sum").replace(0, np.nan)
        out["share"] = (out["time_s"] / denom).fillna(0.0)
        return out[["graph", "name", "kind", "stage", "repeat", "time_s", "share", "bound",
                    "achieved_flops_per_s", "achieved_bytes_per_s", "flops", "bytes"]]

    def to_dict(self) -> dict[str, Any]:
        """Exactly the contract keys; NaN/inf become None."""
        out = {}
        for k in CONTRACT_KEYS:
            v = getattr(self, k)
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            out[k] = v
        return out


def busy_energy_flops(table, bound: np.ndarray, time_s: np.ndarray, params, peak: np.ndarray,
                      reference_fraction) -> np.ndarray:
    """Per op, the FLOPs the energy model charges (per chip, all repeats): the op's own, except that a
    compute-bound matrix op (GEMM, grouped GEMM, fused attention) is charged the FLOPs a GEMM would do in its
    time, whichever is more.

    A kernel that keeps the tensor cores fed below a GEMM's rate keeps its SMs as busy: FlashAttention's
    softmax and rescaling between its matmuls, a W4A16 GEMM widening each weight tile, a grouped GEMM's
    padded and uneven expert tiles draw the power that the FLOPs they lack would have. So such an op draws
    the power of a GEMM for as long as it runs: a dense GEMM or attention at the rate the chip's GEMMs reach
    under the same engine parameters (`params.compute_fraction`: a serving stack's factor, which also stands
    for host gaps between kernels, stays at static power), an MoE expert GEMM at a GEMM's first-principles
    rate (`reference_fraction`): the stack's factor there is its own expert kernels, running. No fitted
    parameter. ML.ENERGY: text-to-video runs (78% attention) draw 0.97 x TDP on an H100; gpt-oss-20b under
    vLLM on one H100 at 256-2,048 sequences draws 564-607 W, where cosim's step is 5-35% shorter than the
    measured inter-token latency and FLOP energy alone gave 387-432 W.
    """
    from cosim.engines import analytical as A

    work = table.flops * table.repeat * table.work_share
    matrix = (np.isin(table.kind, (A.KIND_GEMM, A.KIND_GROUPED, A.KIND_ATTN))
              & (np.asarray(bound) == A.BOTTLENECKS.index("compute")))
    if not matrix.any():
        return work
    prec = table.precision.astype(int)
    own = np.asarray(params.compute_fraction, dtype=np.float64)[prec]
    ref = np.asarray(reference_fraction, dtype=np.float64)[prec]
    fraction = np.where(table.kind == A.KIND_GROUPED, ref, own)
    busy = np.asarray(time_s, dtype=np.float64) * table.repeat * table.work_share * np.asarray(peak)[prec] * fraction
    return np.where(matrix, np.maximum(work, busy), work)


def sp_exchange_share(table, time_s: np.ndarray) -> float:
    """The share of a table's time spent in a video DiT's sequence-parallel exchange (all-to-all, ring
    P2P): ops that keep the GPUs busy rather than idle on the link.

    The exchange is priced at `sp_link_fraction`, a small share of NVLink's rate (0.17 on an H100): most of
    its time is GPU work around the transfer (layout copies, the ring's per-step attention launches and
    merges), not waiting. ML.ENERGY's text-to-video runs draw the same power whatever their layout (Wan2.1-14B
    on 8 B200s: 855-860 W from Ulysses 8 to ring 8, where the exchange is 12-35% of cosim's time), so the
    exchange is charged at the power of the step's other work, with no parameter of its own.
    """
    from cosim.graph.optable import CommKind, OpKind, Stage

    t = np.asarray(time_s, dtype=np.float64) * table.repeat
    total = float(np.sum(t))
    if total <= 0.0:
        return 0.0
    mask = ((table.kind == int(OpKind.COMM)) & (table.stage == int(Stage.DIT))
            & np.isin(table.comm_kind, (int(CommKind.ALL_TO_ALL), int(CommKind.P2P))))
    return float(np.sum(t[mask])) / total


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _resolve_cycle(hw):
    """A per-table override giving GEMM/attention compute seconds from the cycle engine, if it exists."""
    try:
        from cosim.engines.cycle import gemm_time_s
    except Exception:
        raise CosimInputError("--mode cycle is not available yet") from None
    from cosim.graph.optable import OpKind

    def override(table):
        times = np.asarray(gemm_time_s(hw, table), dtype=np.float64)
        mask = np.isin(table.kind, (int(OpKind.GEMM), int(OpKind.GROUPED_GEMM), int(OpKind.ATTENTION)))
        return np.where(mask, times, np.nan)

    return override


def _attention_heads(model) -> int | None:
    """Query heads of a decoder LM's attention or a video DiT's blocks (None if the model has neither)."""
    for part in ("attention", "dit"):
        heads = getattr(getattr(model, part, None), "num_heads", None)
        if heads:
            return int(heads)
    return None


def estimate(hardware, workload, scenario, *, chips: int | None = None, mode: str = "analytical",
             batch_max: bool = False, params=None) -> EstimateResult:
    """Estimate one scenario. `hardware`/`workload`: slug, path or spec object. `batch_max`: largest batch
    that fits (scenario.batch is ignored). Bad input raises CosimInputError; an infeasible mapping is a
    result with feasible False and the reason."""
    from cosim.engines import analytical as A
    from cosim.engines.efficiency import params_for
    from cosim.engines.hwarrays import HardwareArrays
    from cosim.engines.memory import footprint, max_batch
    from cosim.engines.phases import weight_footprint_bytes
    from cosim.engines.vectorized import evaluate_points, replicas_for
    from cosim.graph.optable import OpKind
    from cosim.specs.hardware import PRECISIONS
    from cosim.specs.loader import load_hardware, load_workload

    if mode not in ("analytical", "cycle"):
        raise CosimInputError(f"--mode must be analytical or cycle, got '{mode}'")
    hw = load_hardware(hardware)
    wl = load_workload(workload)
    if scenario.phase == "video" and wl.family != "video_dit":
        raise CosimInputError(f"phase 'video' needs a video workload; '{wl.name}' is a {wl.family} model")
    if scenario.phase != "video" and wl.family == "video_dit":
        raise CosimInputError(f"'{wl.name}' is a video model: use --phase video")
    override = _resolve_cycle(hw) if mode == "cycle" else None
    params = params or params_for(hw)
    replicas = replicas_for(scenario, chips)
    from cosim.graph.sharding import resolve

    try:
        resolve(wl, scenario.model_copy(update={"batch": scenario.parallelism.dp}))
    except CosimInputError as err:
        heads = _attention_heads(wl)
        if heads is None or scenario.parallelism.tp <= heads:  # a layout to fix: bad input (the CLI exits 2)
            raise
        # TP beyond the heads is a layout the model cannot take at any size: a result with its reason
        return EstimateResult(feasible=False, reason=f"infeasible mapping: tp={scenario.parallelism.tp} exceeds the "
                              f"model's {heads} attention heads, which tensor parallelism splits ({err.detail})",
                              batch=scenario.batch, phase=scenario.phase,
                              chips=scenario.parallelism.chips * replicas)
    if batch_max:
        scenario = scenario.model_copy(update={"batch": scenario.parallelism.dp})  # the smallest valid batch
        b = max_batch(wl, scenario, hw.main_memory.capacity_bytes.value, params.memory_reserve_fraction)
        if b == 0:
            fp = footprint(wl, scenario, scenario.parallelism.dp)
            cap = hw.main_memory.capacity_bytes.value * (1 - params.memory_reserve_fraction)
            return EstimateResult(
                feasible=False, batch=None, phase=scenario.phase, memory_bytes_per_chip=fp.total,
                chips=scenario.parallelism.chips * replicas, memory_breakdown=fp.as_dict(),
                reason=(f"does not fit: {fp.total / 1e9:.2f} GB per chip at the smallest batch "
                        f"({scenario.parallelism.dp}) > {cap / 1e9:.2f} GB usable "
                        f"({params.memory_reserve_fraction:.0%} reserved) of {hw.main_memory.capacity_bytes.value / 1e9:.2f} GB"))
        scenario = scenario.model_copy(update={"batch": b})
    hwa = HardwareArrays.from_hardware(hw)
    tables: dict = {}
    cols = evaluate_points(hwa, wl, scenario, chips=chips, params=params, tables=tables, override=override)
    fp = footprint(wl, scenario)
    feasible = bool(cols["feasible"][0])
    reason = None
    if not feasible:
        code = int(cols["reason_code"][0])
        cap = hw.main_memory.capacity_bytes.value
        if code == 1:
            parts = ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in fp.as_dict().items() if k != "total" and v)
            reason = (f"does not fit: {fp.total / 1e9:.2f} GB per chip ({parts}) > "
                      f"{cap * (1 - params.memory_reserve_fraction) / 1e9:.2f} GB usable of {cap / 1e9:.2f} GB "
                      f"({params.memory_reserve_fraction:.0%} reserved)")
        else:
            reason = ("no finite time: a needed peak, bandwidth or interconnect is missing from the spec "
                      f"(precision {scenario.compute_precision}, {scenario.parallelism.chips * replicas} chips)")
    # per-op breakdown from the main table(s)
    parts = []
    opf_all = []
    for key, table in tables.items():
        opf, opi = A.pack_ops(table, params, None if override is None else override(table))
        prm = A.pack_params(params, footprint_bytes=fp.total, weight_footprint_bytes=weight_footprint_bytes(wl, scenario, fp))
        ops = A.run_ops(hwa, opf, opi, prm, params)
        parts.append((key, table, ops["time_s"], ops["bound"], ops["bytes_main_memory"] + ops["bytes_onchip"]))
        opf_all.append((table, ops["bound"]))
    phase = scenario.phase
    # FLOPs per chip by precision: the run's (a generate run's prefill and every decode step; a training
    # step's forward, backward and recompute) in the main graph's precision mix
    flops_by_prec: dict[str, float] = {}
    energy_flops: dict[str, float] = {}  # the FLOPs the energy model charges (busy_energy_flops)
    reference_cf = params_for(hw, calibrated=False).compute_fraction  # a GEMM's first-principles rate
    for (table, bound), part in zip(opf_all[:1], parts[:1], strict=True):
        mask = table.kind != int(OpKind.COMM)
        work = table.flops * table.repeat * table.work_share  # the chips' mean FLOPs
        graph_flops = float(np.sum(work[mask]))
        scale = float(cols["flops"][0]) / graph_flops if graph_flops > 0 else 1.0
        charged = busy_energy_flops(table, bound, part[2], params, hwa.peak_flops_per_s[0], reference_cf)
        for p in np.unique(table.precision[mask]):
            sel = mask & (table.precision == p)
            flops_by_prec[PRECISIONS[int(p)]] = scale * float(np.sum(work[sel]))
            energy_flops[PRECISIONS[int(p)]] = scale * float(np.sum(charged[sel]))
    exchange_share = sp_exchange_share(parts[0][1], parts[0][2]) if parts and phase == "video" else 0.0
    result = EstimateResult(
        feasible=feasible, reason=reason, batch=int(scenario.batch),
        latency_s=_num(cols["latency_s"][0]), ttft_s=_num(cols["ttft_s"][0]), tpot_s=_num(cols["tpot_s"][0]),
        throughput_tokens_per_s=_num(cols["throughput_tokens_per_s"][0]) if phase != "video" else None,
        seconds_per_video=_num(cols["seconds_per_video"][0]) if phase == "video" else None,
        mfu=_num(cols["mfu"][0]), mbu=_num(cols["mbu"][0]),
        bottleneck=A.BOTTLENECKS[int(cols["bottleneck"][0])],
        memory_bytes_per_chip=float(fp.total), breakdown_parts=parts, flops_by_precision=flops_by_prec,
        energy_flops_by_precision=energy_flops,
        bytes_main_memory=float(cols["bytes_main_memory"][0]), bytes_onchip=float(cols["bytes_onchip"][0]),
        comm_bytes_scale_up=float(cols["comm_bytes_scale_up"][0]),
        comm_bytes_scale_out=float(cols["comm_bytes_scale_out"][0]),
        step_time_s=float(cols["step_time_s"][0]), tokens_per_step=float(cols["tokens_per_step"][0]),
        busy_exchange_time_s=exchange_share * float(cols["step_time_s"][0]),
        busy_sequence_time_s=float(cols["busy_sequence_s"][0]) if "busy_sequence_s" in cols else 0.0,
        chips=int(cols["chips"][0]), phase=phase, memory_breakdown=fp.as_dict(), mode=mode,
    )
    if result.feasible:
        _attach_energy_and_cost(hw, result)
    return result


def _attach_energy_and_cost(hw, result: EstimateResult) -> None:
    """Fill the energy and dollar fields; apply the TDP cap (clock derate stretches every time)."""
    from cosim.cost import cost_for_estimate
    from cosim.energy import energy_for_estimate

    energy = energy_for_estimate(hw, result)
    derate = float(energy.get("tdp_derate") or 1.0)
    result.tdp_derate = derate
    if derate > 1.0:
        for name in ("latency_s", "ttft_s", "tpot_s", "seconds_per_video", "step_time_s"):
            value = getattr(result, name)
            if value is not None:
                setattr(result, name, value * derate)
        for name in ("throughput_tokens_per_s", "mfu", "mbu"):
            value = getattr(result, name)
            if value is not None:
                setattr(result, name, value / derate)
    for key in ("energy_j", "energy_j_per_token", "system_energy_j_per_token", "facility_energy_j_per_token",
                "avg_power_w"):
        setattr(result, key, energy.get(key))
    cost = cost_for_estimate(hw, result)
    result.usd_per_million_tokens = cost.get("usd_per_million_tokens")
    result.usd_per_video = cost.get("usd_per_video")
