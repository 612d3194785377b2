"""Engines: OpTable x HardwareArrays -> per-op time, bound and counters.

Numba kernels here compile lazily (`@njit(cache=True)`), never at import. The threading layer is
set to a thread-safe one before numba is first imported (Streamlit and Dask call kernels from threads).
"""

import os

os.environ.setdefault("NUMBA_THREADING_LAYER", "threadsafe")
