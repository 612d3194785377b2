"""Whole-model entry points: per-op seconds and explanations for GEMM, grouped GEMM and attention rows.

TPU/ASIC specs (`compute.systolic` set) run through the systolic fold model with the spec's array
shape, dataflow, clock and main-memory bandwidth (shared by all arrays; on-chip SRAM split evenly
over the arrays' three buffers): the folds' cycles with operands staged on chip (the fold geometry's
closed forms, `systolic.ideal_gemm_cycles`), bounded below by one pass of the operands through main
memory; `cosim cycles` shows the fold-by-fold DRAM stalls. GPUs run through the wave model. Other op kinds get NaN (the
analytical engine prices them).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from cosim.engines.hwarrays import peak_with_fallback
from cosim.errors import CosimInputError
from cosim.graph.optable import OpKind, OpTable
from cosim.specs.hardware import BYTES_PER_ELEMENT, PRECISIONS, Hardware

_SUPPORTED = (OpKind.GEMM, OpKind.GROUPED_GEMM, OpKind.ATTENTION)


def _systolic_config(hw: Hardware, word_bytes: float):
    from cosim.engines.cycle.systolic import SystolicConfig

    s = hw.compute.systolic
    arrays = int(s.arrays_per_core.value * s.cores.value)
    sram = [m for m in hw.memory[:-1] if m.kind == "sram"]
    sram_bytes = max((m.capacity_bytes.value for m in sram), default=24 * 2**20)
    per_buffer = int(sram_bytes / arrays / 3)
    clock = hw.compute.clock_hz.value if hw.compute.clock_hz else 1e9
    bw = hw.main_memory.bandwidth_bytes_per_s
    words_per_cycle = (bw.value / clock / word_bytes) if bw else 0.0
    wb = max(1, int(round(word_bytes)))
    return SystolicConfig(int(s.rows.value), int(s.cols.value), s.dataflow, per_buffer, per_buffer, per_buffer,
                          words_per_cycle, wb, arrays), clock


def _reason(util: float, mapping: float, m: float, rows: float, tail: float) -> str:
    if m <= max(1.0, rows / 8):
        return "tiny M (decode-shaped): array rows or tiles mostly idle"
    if mapping < 0.75:
        return "under-filled array: GEMM dims not a multiple of the array"
    if tail < 0.9:
        return "ragged tail: last wave/fold partly empty"
    if util < 0.5:
        return "fill/drain or memory stalls dominate"
    return "well shaped"


def _rows(hw: Hardware, ops: OpTable) -> list[dict]:
    from cosim.engines.cycle.gpu import attention_waves, gemm_waves
    from cosim.engines.cycle.systolic import ideal_gemm_cycles

    out = []
    systolic = hw.compute.systolic is not None
    for i in range(len(ops)):
        kind = int(ops.kind[i])
        row = {"name": ops.name[i], "kind": OpKind(kind).name.lower(), "seconds": math.nan, "folds_or_waves": math.nan,
               "utilization": math.nan, "mapping_efficiency": math.nan, "reason": ""}
        if kind not in _SUPPORTED:
            out.append(row)
            continue
        if kind == OpKind.ATTENTION and ops.q_len[i] <= 0:  # a Mamba-2 scan (cosim.graph.mamba): no GEMM shape
            row["reason"] = "Mamba-2 scan: not simulated (analytical time only)"
            out.append(row)
            continue
        prec = PRECISIONS[int(ops.precision[i])]
        b = BYTES_PER_ELEMENT[prec]
        groups = max(1.0, float(ops.groups[i])) if kind == OpKind.GROUPED_GEMM else 1.0
        if kind == OpKind.ATTENTION:
            bh = float(ops.batch[i] * ops.heads[i])
            dv = ops.head_dim_v[i] or ops.head_dim[i]
            # a causal (or windowed) core computes only the (query, key) pairs it attends: its blocks above
            # the diagonal are skipped, as FlashAttention-style kernels do, so the two GEMMs run that share
            # of their full q_len x kv_len tiles (the op's FLOPs count the pairs exactly)
            full = 2.0 * bh * ops.q_len[i] * ops.kv_len[i] * (ops.head_dim[i] + dv)
            share = min(1.0, float(ops.flops[i]) / full) if full > 0 and ops.flops[i] > 0 else 1.0
            gemms = [(ops.q_len[i], ops.head_dim[i], ops.kv_len[i], bh * share),
                     (ops.q_len[i], ops.kv_len[i], dv, bh * share)]
        else:
            gemms = [(ops.m[i], ops.k[i], ops.n[i], groups)]
        if systolic:
            cfg, clock = _systolic_config(hw, b)
            secs = folds = util_w = map_w = 0.0
            ideal = replace(cfg, dram_bw_words_per_cycle=0.0)
            mem_bw = hw.main_memory.bandwidth_bytes_per_s.value if hw.main_memory.bandwidth_bytes_per_s else 0.0
            for m, k, n, count in gemms:
                m, k, n = int(max(1, m)), int(max(1, k)), int(max(1, n))
                # array cycles with operands staged on chip (ideal bandwidth), bounded below by moving
                # each operand through main memory once (a compiler tiles to reach that); the fold
                # model's own DRAM stalls assume SCALE-Sim's loop order and are shown by `cosim cycles`
                cycles, gemm_folds, gemm_util, gemm_map = ideal_gemm_cycles(ideal, m, k, n)
                t_mem = (m * k + k * n + m * n) * b / mem_bw if mem_bw else 0.0
                secs += max(cycles / clock, t_mem) * count
                folds += gemm_folds * count
                util_w += gemm_util
                map_w += gemm_map
            util, mapping = util_w / len(gemms), map_w / len(gemms)
            row.update(seconds=secs, folds_or_waves=folds, utilization=util, mapping_efficiency=mapping,
                       reason=_reason(util, mapping, gemms[0][0], cfg.rows, 1.0))
        else:
            peak = peak_with_fallback(hw, prec)
            if not peak:
                raise CosimInputError(f"hardware '{hw.name}' lists no peak FLOP/s for {prec} or a precision it "
                                      "would run it at; the cycle engine needs one (compute.peak_flops_per_s)",
                                      field="precision")
            sms = hw.compute.compute_units.value if hw.compute.compute_units else 1.0
            bw = hw.main_memory.bandwidth_bytes_per_s.value
            tile = hw.compute.gemm_tile
            tm, tn, tk = (tile.m, tile.n, tile.k) if tile else (128, 128, 64)
            if kind == OpKind.ATTENTION:
                r = attention_waves(ops.batch[i], ops.heads[i], ops.kv_heads[i] or ops.heads[i], ops.q_len[i],
                                    ops.kv_len[i], ops.head_dim[i], ops.head_dim_v[i] or ops.head_dim[i],
                                    causal=bool(ops.causal[i]), sms=sms, peak_flops=peak, hbm_bytes_per_s=bw,
                                    bytes_per_el=b)
                secs = r["seconds"]
            else:
                m, k, n, count = gemms[0]
                r = gemm_waves(m * (count if kind == OpKind.GROUPED_GEMM else 1), k, n, sms=sms, peak_flops=peak,
                               hbm_bytes_per_s=bw, bytes_per_el=b, tm=tm, tn=tn, tk=tk)
                secs = r["seconds"]
            flops = sum(2 * m * k * n * c for m, k, n, c in gemms)
            util = flops / (secs * peak) if secs > 0 else math.nan
            row.update(seconds=secs, folds_or_waves=r["waves"], utilization=util,
                       mapping_efficiency=r["wave_efficiency"],
                       reason=_reason(util, 1.0, gemms[0][0], 16.0, r["wave_efficiency"]))
        out.append(row)
    return out


def gemm_time_s(hw: Hardware, ops: OpTable) -> np.ndarray:
    """Seconds per execution of each op (NaN for kinds other than GEMM, GROUPED_GEMM, ATTENTION)."""
    return np.array([r["seconds"] for r in _rows(hw, ops)], dtype=np.float64)


def explain(hw: Hardware, ops: OpTable) -> pd.DataFrame:
    """Per-op folds (systolic) or waves (GPU), utilisation, mapping efficiency and why a shape is slow."""
    return pd.DataFrame(_rows(hw, ops))
