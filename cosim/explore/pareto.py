"""Exact Pareto fronts (non-dominated sets) over two or more objectives.

`pareto_mask(values, senses)` marks the rows no other row dominates. Row a dominates row b when a is
at least as good in every objective and strictly better in one; identical rows do not dominate each
other, so duplicates of a front point are all on the front. NaN rows are never on the front.

- 2 objectives: O(n log n) — sort by (f1, f2) and sweep with the running minimum of f2.
- k > 2: sort lexicographically (only an earlier row can dominate a later one), then test blocks of
  rows against the front found so far and against each other, vectorised. Exact for any k; cost
  O(n x front size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cosim.errors import CosimInputError

_BLOCK = 512


def _as_minimise(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(senses):
        raise CosimInputError(f"expected an (n, {len(senses)}) array of objective values")
    if len(senses) < 2:
        raise CosimInputError("a Pareto front needs at least two objectives")
    signs = []
    for s in senses:
        if s not in ("max", "min"):
            raise CosimInputError(f"objective sense must be max or min, got '{s}'")
        signs.append(-1.0 if s == "max" else 1.0)
    return values * np.asarray(signs)


def pareto_mask(values, senses: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n x k), each column maximised or minimised."""
    f = _as_minimise(values, senses)
    n = len(f)
    mask = np.zeros(n, dtype=bool)
    valid = ~np.isnan(f).any(axis=1)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return mask
    f = f[idx]
    keep = _front_2d(f) if f.shape[1] == 2 else _front_nd(f)
    mask[idx[keep]] = True
    return mask


def _front_2d(f: np.ndarray) -> np.ndarray:
    order = np.lexsort((f[:, 1], f[:, 0]))
    a, b = f[order, 0], f[order, 1]
    n = len(a)
    run_min = np.minimum.accumulate(b)
    prev_min = np.empty(n)
    prev_min[0] = np.inf
    prev_min[1:] = run_min[:-1]
    # f1 of the first (smallest-f1) earlier row that reached the running minimum of f2
    new_min = np.empty(n, dtype=bool)
    new_min[0] = True
    new_min[1:] = b[1:] < run_min[:-1]
    first_at = np.maximum.accumulate(np.where(new_min, np.arange(n), 0))
    a_at_min = np.empty(n)
    a_at_min[0] = np.inf
    a_at_min[1:] = a[first_at[:-1]]
    dominated = (prev_min < b) | ((prev_min == b) & (a_at_min < a))
    keep = np.zeros(n, dtype=bool)
    keep[order] = ~dominated
    return keep


def _dominance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) matrix: row i of `a` dominates row j of `b` (one 2-D pass per objective)."""
    le = np.ones((len(a), len(b)), dtype=bool)
    lt = np.zeros((len(a), len(b)), dtype=bool)
    for j in range(a.shape[1]):
        x, y = a[:, j, None], b[None, :, j]
        le &= x <= y
        lt |= x < y
    return le & lt


def _dominated_by(front: np.ndarray, block: np.ndarray) -> np.ndarray:
    """For each row of `block`, whether some row of `front` dominates it."""
    out = np.zeros(len(block), dtype=bool)
    step = max(1, 2_000_000 // max(1, len(block)))
    for s in range(0, len(front), step):
        out |= _dominance(front[s:s + step], block).any(axis=0)
    return out


def _front_nd(f: np.ndarray) -> np.ndarray:
    order = np.lexsort(f.T[::-1])
    g = f[order]
    keep_sorted = np.zeros(len(g), dtype=bool)
    fronts: list[np.ndarray] = []
    front = np.empty((0, g.shape[1]))
    for s in range(0, len(g), _BLOCK):
        block = g[s:s + _BLOCK]
        if fronts:
            front = np.vstack([front, *fronts])
            fronts = []
        alive = np.flatnonzero(~_dominated_by(front, block))
        cand = block[alive]
        # within the block an earlier (lexicographically smaller) candidate may dominate a later one
        pos = alive[~_dominance(cand, cand).any(axis=0)]
        keep_sorted[s + pos] = True
        fronts.append(block[pos])
    keep = np.zeros(len(g), dtype=bool)
    keep[order] = keep_sorted
    return keep


def pareto_mask_bruteforce(values, senses: Sequence[str]) -> np.ndarray:
    """O(n^2) reference: a row is on the front if no row dominates it (for tests)."""
    f = _as_minimise(values, senses)
    n = len(f)
    keep = np.zeros(n, dtype=bool)
    for i in range(n):
        if np.isnan(f[i]).any():
            continue
        dominated = False
        for j in range(n):
            if j != i and not np.isnan(f[j]).any() and (f[j] <= f[i]).all() and (f[j] < f[i]).any():
                dominated = True
                break
        keep[i] = not dominated
    return keep


def parse_objectives(texts: Sequence[str]) -> list[tuple[str, str]]:
    """`COL:max` / `COL:min` strings -> (column, sense) pairs."""
    out = []
    for t in texts:
        col, _, sense = str(t).rpartition(":")
        if not col or sense not in ("max", "min"):
            raise CosimInputError(f"--objective '{t}' must look like COLUMN:max or COLUMN:min")
        out.append((col, sense))
    return out


def pareto_front_table(path, objectives: Sequence[str], *, include_infeasible: bool = False):
    """Read a sweep's Parquet results and return the Pareto-optimal rows as a DataFrame (sorted by objective 1)."""
    import difflib

    import pyarrow.parquet as pq

    pairs = parse_objectives(objectives)
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise CosimInputError("file not found", file=str(path)) from None
    except Exception as err:
        raise CosimInputError(f"not a readable Parquet file ({err})", file=str(path)) from None
    names = pf.schema_arrow.names
    for col, _ in pairs:
        if col not in names:
            close = difflib.get_close_matches(col, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CosimInputError(f"unknown column '{col}'{hint}", file=str(path), field="--objective")
    flags = [c for c in ("feasible", "meets_constraints") if c in names and not include_infeasible]
    cols = list(dict.fromkeys([c for c, _ in pairs] + flags))
    table = pf.read(columns=cols)
    values = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c, _ in pairs])
    for flag in flags:
        ok = table.column(flag).to_numpy(zero_copy_only=False).astype(bool)
        values[~ok] = np.nan
    mask = pareto_mask(values, [s for _, s in pairs])
    rows = np.flatnonzero(mask)
    front = _take_rows(pf, rows).to_pandas()
    col0, sense0 = pairs[0]
    return front.sort_values(col0, ascending=(sense0 == "min"), kind="stable").reset_index(drop=True)


def _take_rows(pf, rows: np.ndarray):
    """The given rows of a Parquet file, reading one row group at a time (bounded memory)."""
    import pyarrow as pa

    pieces = []
    start = 0
    for g in range(pf.metadata.num_row_groups):
        count = pf.metadata.row_group(g).num_rows
        inside = rows[(rows >= start) & (rows < start + count)] - start
        if inside.size:
            pieces.append(pf.read_row_group(g).take(pa.array(inside)))
        start += count
    if not pieces:
        return pf.schema_arrow.empty_table()
    return pa.concat_tables(pieces)
