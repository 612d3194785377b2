"""Which running batch an offline-throughput miss implies: a wrong batch or a wrong step time?

cosim's offline prediction is the engine's admitted batch (its KV pool, the sequence cap, the request count)
times the rate one step of that batch sustains. Bisecting the batch until the calibrated prediction meets the
measured rate separates the two: a ratio near 1 puts the miss in the admitted batch's margin, a ratio far below
1 at a batch the row states (or every cell of a column alike) puts it in the step time (notes.md, session
37). A diagnostic for developers; no prediction depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cosim.errors import CosimInputError


@dataclass(frozen=True)
class ImpliedBatch:
    """The batch (all attention-DP ranks together) cosim admits for a row and the one its measurement implies."""

    row_id: str
    admitted: int
    implied: int | None  # None: the measured rate is beyond cosim even at the admitted batch
    dp: int

    @property
    def ratio(self) -> float | None:
        """Implied over admitted batch (None when the measurement is beyond the admitted batch's rate)."""
        return None if self.implied is None else self.implied / self.admitted


def offline_rate(row_id: str) -> tuple[int, int, Callable[[int], float]]:
    """(batch cosim admits, attention-DP ranks, output tokens/s as a function of the running batch) of an
    offline-throughput row, with the calibrated parameters and the row's stack as `cosim validate` runs it."""
    from cosim.engines.calibration import calibrated_params, is_moe, stack_params
    from cosim.specs.loader import load_hardware, load_workload
    from cosim.validate import predict as P
    from cosim.validate.mapping import lengths, load_mapping, output_cv
    from cosim.validate.runner import query_for

    try:
        q = query_for(row_id)
    except KeyError:
        raise CosimInputError(f"{row_id}: no such reference row (cosim/data/reference/mapping.yaml)") from None
    if q.kind != "offline_throughput":
        raise CosimInputError(f"{row_id}: the implied batch needs an offline_throughput row, not {q.kind}")
    mapping = load_mapping()
    hw = load_hardware(q.hardware)
    params = P.with_row_kernel(q, stack_params(hw, q.stack, calibrated_params(hw), is_moe(load_workload(q.workload))))
    inp, out = lengths(q, mapping)
    cv = output_cv(q, mapping)
    res, replicas = P._offline(q, mapping, params)
    if not res.feasible or not res.batch:
        raise CosimInputError(f"{row_id}: no feasible prediction ({res.reason})")

    def rate(batch: int) -> float:
        run = P.engine_run(q, inp, out, P.chips_per_replica(q), params, batch, cv)
        return float(run.throughput_tokens_per_s or 0.0) * replicas

    return int(res.batch), q.dp, rate


def implied_batch(row_id: str, measured: float | None = None) -> ImpliedBatch:
    """Bisect the running batch of an offline-throughput row until cosim's calibrated prediction meets
    `measured` (default: the row's published value); the batch stays a multiple of the attention-DP ranks.
    The result meets the rate and one sequence fewer per rank does not; a finite run's last wave makes the
    rate step in the batch, so that crossing need not be the only one."""
    from cosim.validate.runner import base_table

    admitted, dp, rate = offline_rate(row_id)
    if measured is None:
        measured = float(base_table([row_id])["measured"].iloc[0])
    if rate(admitted) < measured:
        return ImpliedBatch(row_id, admitted, None, dp)
    lo, hi = 0, admitted // dp  # in sequences per rank: rate(lo) < measured <= rate(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(mid * dp) < measured:
            lo = mid
        else:
            hi = mid
    return ImpliedBatch(row_id, admitted, hi * dp, dp)
