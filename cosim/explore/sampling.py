"""Design points generated chunk by chunk, so memory stays bounded for any number of points.

`chunk_points(spec, k, size)` returns the parameter values of points `[k*size, (k+1)*size)` as one
float64 array per parameter, identical whichever process asks (a Dask worker or this one):

- grid: mixed-radix decoding of the global point index (parameter 0 varies slowest);
- random: a generator seeded by (seed, chunk index);
- sobol: one scrambled Sobol sequence (`scipy.stats.qmc.Sobol`, seeded), fast-forwarded to the chunk;
- lhs: a Latin hypercube per chunk, seeded by (seed, chunk index) — exactly Latin when the sweep fits in
  one chunk, stratified chunk by chunk otherwise (a global LHS would need every point in memory).
"""

from __future__ import annotations

import warnings

import numpy as np

from cosim.explore.spec import Parameter, SweepSpec


def grid_axis(p: Parameter) -> np.ndarray:
    """The values one parameter takes on a grid."""
    if p.values is not None:
        axis = np.asarray(p.numeric_values, dtype=np.float64)
    else:
        low, high = p.bounds
        num = int(p.range.num or 1)
        axis = np.geomspace(low, high, num) if p.range.log else np.linspace(low, high, num)
    return np.unique(np.round(axis)) if p.integer else axis


def scale_unit(p: Parameter, u: np.ndarray) -> np.ndarray:
    """Map uniform [0, 1) draws onto a parameter: a value list, a linear or a log range."""
    if p.values is not None:
        vals = np.asarray(p.numeric_values, dtype=np.float64)
        idx = np.minimum((u * len(vals)).astype(np.int64), len(vals) - 1)
        out = vals[idx]
    else:
        low, high = p.bounds
        if p.integer:  # equal probability per integer in [ceil(low), floor(high)]
            lo, hi = np.ceil(low), np.floor(high)
            if p.range.log:
                return np.clip(np.round(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))), lo, hi)
            return np.minimum(lo + np.floor(u * (hi - lo + 1.0)), hi)
        out = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if p.range.log else low + u * (high - low)
    return np.round(out) if p.integer else out


def _unit_draws(spec: SweepSpec, start: int, n: int, chunk_index: int) -> np.ndarray:
    d = len(spec.parameters)
    method, seed = spec.sampling.method, spec.sampling.seed
    if method == "random":
        return np.random.default_rng([seed, chunk_index]).random((n, d))
    from scipy.stats import qmc

    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=np.random.default_rng([seed, chunk_index])).random(n)
    sobol = qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance-property warning when n is not a power of 2
        if start:
            sobol.fast_forward(start)
        return sobol.random(n)


def chunk_points(spec: SweepSpec, chunk_index: int, chunk_size: int | None = None) -> dict[str, np.ndarray]:
    """Parameter values (path -> array) of one chunk; empty arrays past the end."""
    size = chunk_size or spec.chunk_size
    total = spec.n_points()
    start = chunk_index * size
    n = max(0, min(size, total - start))
    if spec.sampling.method == "grid":
        axes = [grid_axis(p) for p in spec.parameters]
        idx = np.arange(start, start + n, dtype=np.int64)
        out = {}
        for p, axis in zip(reversed(spec.parameters), reversed(axes), strict=True):
            out[p.path] = axis[idx % len(axis)]
            idx //= len(axis)
        return {p.path: out[p.path] for p in spec.parameters}
    u = _unit_draws(spec, start, n, chunk_index) if n else np.zeros((0, len(spec.parameters)))
    return {p.path: scale_unit(p, u[:, i]) for i, p in enumerate(spec.parameters)}


def n_chunks(spec: SweepSpec, chunk_size: int | None = None) -> int:
    size = chunk_size or spec.chunk_size
    return -(-spec.n_points() // size)
