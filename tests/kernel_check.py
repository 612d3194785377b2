"""Shared assertion: the Numba kernel and the plain-Python reference agree on every output column."""

from __future__ import annotations

import numpy as np

from cosim.engines import analytical as A
from cosim.engines import reference


def assert_kernel_matches_reference(hw, table, params, *, footprint_bytes: float,
                                    weight_footprint_bytes: float) -> dict:
    """Run `table` on the design points `hw` both ways; assert every OUT column to 1e-9; return the kernel's."""
    opf, opi = A.pack_ops(table, params)
    prm = A.pack_params(params, footprint_bytes=footprint_bytes, weight_footprint_bytes=weight_footprint_bytes)
    fast = A.run_points(hw, opf, opi, prm, params)
    ref = reference.evaluate(hw, opf, opi, prm, params)
    for key in A.OUT:
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-9, atol=0, err_msg=key)
    return fast
