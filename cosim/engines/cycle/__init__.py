"""Cycle-approximate engine: systolic arrays fold by fold (SCALE-Sim semantics) and GPUs wave by wave.

`gemm_time_s(hw, ops)` and `explain(hw, ops)` are the whole-model entry points used by
`cosim estimate --mode cycle`; `simulate_gemm` is the single-GEMM systolic model behind
`cosim cycles`. Numba kernels compile lazily on first use, never at import.
"""

from __future__ import annotations

from cosim.engines.cycle.model import explain, gemm_time_s
from cosim.engines.cycle.systolic import GemmCycles, SystolicConfig, im2col_gemm, simulate_gemm

__all__ = ["GemmCycles", "SystolicConfig", "explain", "gemm_time_s", "im2col_gemm", "simulate_gemm"]
