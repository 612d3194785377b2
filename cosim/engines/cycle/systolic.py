"""Public systolic-array model: one GEMM on R x C arrays, split over arrays and cores.

Combines the exact closed forms of `geometry` (folds, compute cycles, SRAM traffic, mapping
efficiency) with the memory model of `kernel` (DRAM traffic and stall cycles). Inputs are checked
here and raise CosimInputError with one line naming the bad value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from cosim.engines.cycle import geometry
from cosim.errors import CosimInputError


@dataclass(frozen=True)
class SystolicConfig:
    """One array and its buffers. Buffer sizes are bytes; `dram_bw_words_per_cycle` <= 0 means ideal."""

    rows: int
    cols: int
    dataflow: str = "ws"
    ifmap_sram_bytes: int = 64 * 1024
    filter_sram_bytes: int = 64 * 1024
    ofmap_sram_bytes: int = 64 * 1024
    dram_bw_words_per_cycle: float = 0.0
    word_bytes: int = 1
    arrays: int = 1  # arrays working on the GEMM in parallel (arrays per core x cores)

    def words(self, nbytes: int) -> int:
        return int(nbytes // self.word_bytes)


@dataclass(frozen=True)
class GemmCycles:
    compute_cycles: int
    stall_cycles: int
    total_cycles: int
    utilization: float
    mapping_efficiency: float
    sram_reads: dict
    sram_writes: dict
    dram_reads: dict
    dram_writes: dict
    folds: int

    def to_dict(self) -> dict:
        return asdict(self)


def validate(cfg: SystolicConfig, m: int, k: int, n: int) -> None:
    """Raise CosimInputError for a shape or configuration the model cannot run."""
    for name, value in (("--m", m), ("--k", k), ("--n", n), ("--rows", cfg.rows), ("--cols", cfg.cols),
                        ("--word-bytes", cfg.word_bytes), ("arrays", cfg.arrays)):
        if int(value) != value or value <= 0:
            raise CosimInputError(f"{name} must be a positive integer, got {value}")
    if cfg.dataflow not in geometry.DATAFLOWS:
        raise CosimInputError(f"unknown dataflow '{cfg.dataflow}'; expected os, ws or is")
    # one fold's operands must fit in the active half of each buffer
    need = {"ifmap": cfg.rows, "filter": cfg.cols, "ofmap": cfg.cols}
    sizes = {"ifmap": cfg.ifmap_sram_bytes, "filter": cfg.filter_sram_bytes, "ofmap": cfg.ofmap_sram_bytes}
    for name, words in need.items():
        have = cfg.words(sizes[name]) // 2
        if have < words:
            raise CosimInputError(
                f"{name} SRAM too small: {sizes[name]} bytes holds {have} words per half-buffer, "
                f"one fold needs at least {words}")


def _split(cfg: SystolicConfig, m: int, k: int, n: int) -> list[tuple[int, int, int, int]]:
    """(m, k, n, copies) chunks: N split across arrays (M when N is too narrow)."""
    p = cfg.arrays
    if p == 1:
        return [(m, k, n, 1)]
    if n >= p:
        step = math.ceil(n / p)
        full, rest = divmod(n, step)
        return [(m, k, step, full)] + ([(m, k, rest, 1)] if rest else [])
    step = math.ceil(m / p)
    full, rest = divmod(m, step)
    return [(step, k, n, full)] + ([(rest, k, n, 1)] if rest else [])


def _one_array(cfg: SystolicConfig, m: int, k: int, n: int, bw: float) -> dict:
    from cosim.engines.cycle.kernel import OUT_DRAM_F, OUT_DRAM_IF, OUT_STALL, simulate

    df = geometry.DATAFLOW_CODE[cfg.dataflow]
    res = simulate(df, cfg.rows, cfg.cols, m, k, n, cfg.words(cfg.ifmap_sram_bytes),
                   cfg.words(cfg.filter_sram_bytes), cfg.words(cfg.ofmap_sram_bytes), float(bw))
    compute = geometry.compute_cycles(cfg.rows, cfg.cols, cfg.dataflow, m, k, n)
    sram = geometry.sram_traffic(cfg.rows, cfg.cols, cfg.dataflow, m, k, n)
    return {
        "compute": compute, "stall": int(res[OUT_STALL]),
        "folds": geometry.fold_geometry(cfg.rows, cfg.cols, cfg.dataflow, m, k, n).folds,
        "sram": sram,
        "dram_reads": {"ifmap": int(res[OUT_DRAM_IF]), "filter": int(res[OUT_DRAM_F]), "ofmap": 0},
        "dram_writes": {"ifmap": 0, "filter": 0, "ofmap": sram["writes"]["ofmap"]},
        "mapping": geometry.mapping_efficiency(cfg.rows, cfg.cols, cfg.dataflow, m, k, n),
    }


def simulate_gemm(cfg: SystolicConfig, m: int, k: int, n: int) -> GemmCycles:
    """Cycles, utilisation and traffic of one GEMM (M, K, N) on `cfg.arrays` identical arrays."""
    validate(cfg, m, k, n)
    bw = cfg.dram_bw_words_per_cycle / cfg.arrays if cfg.dram_bw_words_per_cycle > 0 else 0.0
    parts = [(_one_array(cfg, pm, pk, pn, bw), copies) for pm, pk, pn, copies in _split(cfg, m, k, n)]
    slowest = max(parts, key=lambda pc: pc[0]["compute"] + pc[0]["stall"])[0]
    compute, stall = slowest["compute"], slowest["stall"]
    total = compute + stall

    def summed(key: str, sub: str | None = None) -> dict:
        out = {"ifmap": 0, "filter": 0, "ofmap": 0}
        for part, copies in parts:
            src = part[key][sub] if sub else part[key]
            for op in out:
                out[op] += src[op] * copies
        return out

    macs = m * k * n
    pes = cfg.rows * cfg.cols * cfg.arrays
    mapping = sum(p["mapping"] * p["folds"] * c for p, c in parts) / sum(p["folds"] * c for p, c in parts)
    return GemmCycles(
        compute_cycles=compute, stall_cycles=stall, total_cycles=total,
        utilization=macs / (total * pes) if total > 0 else 0.0,
        mapping_efficiency=mapping,
        sram_reads=summed("sram", "reads"), sram_writes=summed("sram", "writes"),
        dram_reads=summed("dram_reads"), dram_writes=summed("dram_writes"),
        folds=sum(p["folds"] * c for p, c in parts),
    )


def ideal_gemm_cycles(cfg: SystolicConfig, m: int, k: int, n: int) -> tuple[int, int, float, float]:
    """(total cycles, folds, utilisation, mapping efficiency) of one GEMM with its operands staged on chip:
    no DRAM stalls, so the fold geometry's closed forms give what `simulate_gemm` would at zero DRAM bandwidth,
    without simulating each fold's buffers (a long prefill on a TPU is tens of thousands of folds)."""
    validate(cfg, m, k, n)
    chunks = _split(cfg, m, k, n)
    compute = max(geometry.compute_cycles(cfg.rows, cfg.cols, cfg.dataflow, pm, pk, pn) for pm, pk, pn, _ in chunks)
    folds = [(geometry.fold_geometry(cfg.rows, cfg.cols, cfg.dataflow, pm, pk, pn).folds, c,
              geometry.mapping_efficiency(cfg.rows, cfg.cols, cfg.dataflow, pm, pk, pn)) for pm, pk, pn, c in chunks]
    total_folds = sum(f * c for f, c, _ in folds)
    mapping = sum(e * f * c for f, c, e in folds) / total_folds
    pes = cfg.rows * cfg.cols * cfg.arrays
    return compute, total_folds, (m * k * n / (compute * pes) if compute > 0 else 0.0), mapping


def im2col_gemm(batch: int, in_h: int, in_w: int, in_ch: int, filt_h: int, filt_w: int, out_ch: int,
                stride: int = 1) -> tuple[int, int, int]:
    """Lower a convolution to a GEMM (M, K, N) the way SCALE-Sim does (no padding):
    M = output pixels x batch, K = filt_h x filt_w x in_ch, N = out_ch."""
    for name, v in (("batch", batch), ("in_h", in_h), ("in_w", in_w), ("in_ch", in_ch), ("filt_h", filt_h),
                    ("filt_w", filt_w), ("out_ch", out_ch), ("stride", stride)):
        if v <= 0:
            raise CosimInputError(f"convolution {name} must be positive, got {v}")
    out_h = math.ceil((in_h - filt_h + stride) / stride)
    out_w = math.ceil((in_w - filt_w + stride) / stride)
    if out_h <= 0 or out_w <= 0:
        raise CosimInputError("convolution filter is larger than its input")
    return batch * out_h * out_w, filt_h * filt_w * in_ch, out_ch
