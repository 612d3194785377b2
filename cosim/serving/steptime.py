"""Step-time models: how long one scheduler iteration of a replica takes, as interpolated tables.

The serving simulator never calls the analytical engine inside its event loop. It asks a
`StepTimeModel` for the duration of one iteration, decomposed into three additive parts that
match the kernels a real serving engine launches:

* `linear(N)`: every non-attention op (GEMMs, norms, activations, TP collectives, per-step launch
  overhead) for the N tokens that pass through the model in this iteration
  (N = prefill tokens + one token per decoding sequence). The weights are read once per step,
  so this part carries the memory-bound floor of small batches.
* `decode_attention(K)`: decode attention reading K cached tokens in total (K = sum over decoding
  sequences of their context, the new token included). Memory bound, so linear in K.
* `prefill_attention(P)`: prefill attention over P causal (query, key) pairs
  (a chunk of q tokens after c cached tokens has q*c + q*(q+1)/2 pairs). Compute bound. It may be
  negative: it also carries what a prefill saves against `linear` (the LM head runs on the last token).

Each part is a 1-D table on a geometric grid, interpolated linearly (and extrapolated with the
last segment's slope), so one iteration costs a few array lookups inside a Numba kernel. Any
model -- the analytical engine (see `cosim.serving.adapter`) or a closed form such as
`AffineStepTime` used by the tests -- is reduced to these tables before a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numba import njit

from cosim.errors import CosimInputError


@runtime_checkable
class StepTimeModel(Protocol):
    """The contract the simulator needs: time (s) of one iteration's three additive parts."""

    def linear_time(self, tokens: np.ndarray) -> np.ndarray:
        """Non-attention time of an iteration carrying `tokens` tokens (vectorised)."""
        ...

    def decode_attention_time(self, kv_tokens: np.ndarray) -> np.ndarray:
        """Decode-attention time when the decoding sequences read `kv_tokens` cached tokens in total."""
        ...

    def prefill_attention_time(self, pairs: np.ndarray) -> np.ndarray:
        """Prefill-attention time for `pairs` causal (query, key) pairs."""
        ...


def causal_pairs(chunk: int | np.ndarray, cached: int | np.ndarray) -> np.ndarray | int:
    """(query, key) pairs of a prefill chunk of `chunk` tokens after `cached` tokens: q*c + q(q+1)/2."""
    return chunk * cached + chunk * (chunk + 1) // 2


def geometric_grid(max_value: float, points_per_decade: int = 12, include_zero: bool = True) -> np.ndarray:
    """1, ..., max_value on a log grid (integers, unique), with 0 prepended when asked."""
    top = max(2.0, float(max_value))
    n = max(2, int(np.ceil(np.log10(top) * points_per_decade)) + 1)
    grid = np.unique(np.round(np.geomspace(1.0, top, n)))
    if include_zero:
        grid = np.concatenate(([0.0], grid))
    return grid.astype(np.float64)


@dataclass(frozen=True)
class StepTimeTable:
    """Three 1-D tables (grid, seconds) that the kernel interpolates; build with `tabulate`."""

    tokens_grid: np.ndarray
    linear_s: np.ndarray
    kv_grid: np.ndarray
    decode_attn_s: np.ndarray
    pairs_grid: np.ndarray
    prefill_attn_s: np.ndarray
    source: str = "unspecified"
    # least duration of an iteration that carries prompt tokens: the host time of an engine that launches
    # such iterations without CUDA graphs (cosim.engines.eager); 0: none
    prompt_step_floor_s: float = 0.0
    # batch sizes with a captured CUDA graph: an iteration without prompt tokens runs its linear part at the
    # next one up (cosim.engines.graph_padding), above the largest as it is; (): none
    graph_batch_sizes: tuple[float, ...] = ()
    # seconds per running sequence per iteration (an engine's host work and a stack's unpriced GPU work per
    # sequence: EngineParams.per_sequence_overhead_s + per_sequence_busy_s), paid per sequence in the batch,
    # not per prompt token, so it stays out of the linear table; 0: none
    per_sequence_s: float = 0.0
    # sliding-window attention: a `kv_window_share` of the attention layers read at most `kv_window_tokens` cached
    # tokens per sequence, so the decode-attention table is indexed by full-attention-equivalent tokens
    # (kernel.kv_read_tokens); 0: every layer reads the whole context
    kv_window_tokens: float = 0.0
    kv_window_share: float = 0.0

    def __post_init__(self) -> None:
        for grid, vals, name in ((self.tokens_grid, self.linear_s, "linear"),
                                 (self.kv_grid, self.decode_attn_s, "decode attention"),
                                 (self.pairs_grid, self.prefill_attn_s, "prefill attention")):
            if grid.ndim != 1 or grid.shape != vals.shape or len(grid) < 2:
                raise CosimInputError(f"step-time table '{name}' needs matching 1-D grid and values (>= 2 points)")
            if np.any(np.diff(grid) <= 0):
                raise CosimInputError(f"step-time table '{name}' grid must be strictly increasing")
            if not np.all(np.isfinite(vals)):
                raise CosimInputError(f"step-time table '{name}' values must be finite")
        if np.any(self.linear_s <= 0):
            raise CosimInputError("step-time table 'linear' values must be > 0")
        if not (np.isfinite(self.prompt_step_floor_s) and self.prompt_step_floor_s >= 0):
            raise CosimInputError("step-time table 'prompt_step_floor_s' must be a finite number >= 0")
        if not (np.isfinite(self.kv_window_tokens) and self.kv_window_tokens >= 0
                and 0.0 <= self.kv_window_share <= 1.0):
            raise CosimInputError("step-time table 'kv_window_tokens' must be >= 0 and 'kv_window_share' in [0, 1]")
        if not (np.isfinite(self.per_sequence_s) and self.per_sequence_s >= 0):
            raise CosimInputError("step-time table 'per_sequence_s' must be a finite number >= 0")
        sizes = np.asarray(self.graph_batch_sizes, dtype=np.float64)
        if sizes.size and (np.any(sizes < 1) or np.any(np.diff(sizes) <= 0)):
            raise CosimInputError("step-time table 'graph_batch_sizes' must be increasing batch sizes >= 1")

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The six contiguous float64 arrays, in the order the kernel takes them."""
        return tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (
            self.tokens_grid, self.linear_s, self.kv_grid, self.decode_attn_s, self.pairs_grid,
            self.prefill_attn_s))

    # Plain-Python evaluation (tests, reports); the kernel uses `interp_extrap` on the same arrays.
    def step_time(self, tokens: float, kv_tokens: float = 0.0, pairs: float = 0.0, seqs: float | None = None) -> float:
        """Seconds of one iteration with `tokens` tokens, `kv_tokens` decode context, `pairs` prefill pairs and
        `seqs` running sequences (default: one per token without prompt tokens, else one), at least
        `prompt_step_floor_s` when it carries prompt tokens (pairs > 0); without them, its linear part at the
        next of `graph_batch_sizes`."""
        if seqs is None:
            seqs = tokens if pairs <= 0 else 1.0
        if pairs <= 0 and self.graph_batch_sizes:
            tokens = next((s for s in self.graph_batch_sizes if s >= tokens), tokens)
        t = float(combine(interp_extrap(self.tokens_grid, self.linear_s, float(tokens)),
                          interp_extrap(self.kv_grid, self.decode_attn_s, float(kv_tokens)),
                          interp_extrap(self.pairs_grid, self.prefill_attn_s, float(pairs))))
        t += self.per_sequence_s * float(seqs)
        return max(t, self.prompt_step_floor_s) if pairs > 0 else t

    def prefill_time(self, prompt: int, cached: int = 0) -> float:
        """One iteration that prefills `prompt` tokens after `cached` cached tokens (no decodes)."""
        return self.step_time(prompt, 0.0, float(causal_pairs(prompt, cached)))

    def decode_time(self, seqs: int, mean_context: float) -> float:
        """One decode iteration of `seqs` sequences each at `mean_context` cached tokens."""
        from cosim.serving.kernel import kv_read_tokens

        read = kv_read_tokens(float(mean_context), float(self.kv_window_tokens), float(self.kv_window_share))
        return self.step_time(seqs, seqs * read, 0.0)


def tabulate(model: StepTimeModel, max_tokens: float, max_kv_tokens: float, max_pairs: float,
             points_per_decade: int = 12, source: str = "unspecified") -> StepTimeTable:
    """Sample a `StepTimeModel` on geometric grids wide enough for a run (extrapolated beyond)."""
    tok = geometric_grid(max_tokens, points_per_decade, include_zero=False)
    kv = geometric_grid(max_kv_tokens, points_per_decade)
    pairs = geometric_grid(max_pairs, points_per_decade)
    return StepTimeTable(
        tokens_grid=tok, linear_s=np.asarray(model.linear_time(tok), dtype=np.float64),
        kv_grid=kv, decode_attn_s=np.asarray(model.decode_attention_time(kv), dtype=np.float64),
        pairs_grid=pairs, prefill_attn_s=np.asarray(model.prefill_attention_time(pairs), dtype=np.float64),
        source=source,
    )


@dataclass(frozen=True)
class AffineStepTime:
    """A closed-form step time, affine in each part (for tests and hand calculations).

    step = overhead_s + per_token_s * N + per_kv_token_s * K + per_pair_s * P
    """

    overhead_s: float
    per_token_s: float
    per_kv_token_s: float = 0.0
    per_pair_s: float = 0.0

    def linear_time(self, tokens):
        return self.overhead_s + self.per_token_s * np.asarray(tokens, dtype=np.float64)

    def decode_attention_time(self, kv_tokens):
        return self.per_kv_token_s * np.asarray(kv_tokens, dtype=np.float64)

    def prefill_attention_time(self, pairs):
        return self.per_pair_s * np.asarray(pairs, dtype=np.float64)

    def table(self, max_tokens: float = 1 << 16, max_kv_tokens: float = 1 << 24,
              max_pairs: float = 1 << 34) -> StepTimeTable:
        """Tables that reproduce this closed form exactly (it is linear, so interpolation is exact)."""
        return tabulate(self, max_tokens, max_kv_tokens, max_pairs, points_per_decade=4, source="affine")


@njit(cache=True)
def combine(linear: float, decode_attn: float, prefill_attn: float) -> float:
    """One iteration's time from its parts. Decode attention is clipped at 0; the prefill part may be
    negative (an engine's prefill skips the LM head for all but the last token, which `linear`, measured
    on decode batches, includes); the sum is floored at a nanosecond as a guard."""
    t = linear + (decode_attn if decode_attn > 0.0 else 0.0) + prefill_attn
    return t if t > 1e-9 else 1e-9


@njit(cache=True)
def interp_extrap(grid: np.ndarray, vals: np.ndarray, x: float) -> float:
    """Piecewise-linear interpolation on a sorted grid, extrapolated linearly at both ends."""
    n = grid.shape[0]
    if x <= grid[0]:
        i = 0
    elif x >= grid[n - 1]:
        i = n - 2
    else:
        lo = 0
        hi = n - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if grid[mid] <= x:
                lo = mid
            else:
                hi = mid
        i = lo
    x0 = grid[i]
    x1 = grid[i + 1]
    y0 = vals[i]
    y1 = vals[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
