"""Plain-Python reference of the systolic fold/memory model, for small shapes (tests compare the kernel).

Runs the un-compiled body of `kernel.simulate` checking the buffer window for every demanded
element (as SCALE-Sim does), where the compiled kernel checks the first and last set of a line.
"""

from __future__ import annotations

import numpy as np


def simulate_reference(df: int, rows: int, cols: int, m: int, k: int, n: int, buf_if: int, buf_f: int,
                       buf_of: int, bw: float) -> np.ndarray:
    from cosim.engines.cycle import kernel

    return kernel.simulate.py_func(df, rows, cols, m, k, n, buf_if, buf_f, buf_of, bw, True)
