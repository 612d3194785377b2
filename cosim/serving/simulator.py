"""Run a serving simulation: requests x step-time table x serving configuration -> per-request times.

`simulate` prepares flat arrays, checks that every request fits a replica's KV cache, runs the
event-loop kernel (`cosim.serving.kernel`) once, or twice for prefill/decode disaggregation (the
prefill pool first, then the decode pool fed with the prefill finish times plus the KV transfer),
and returns a `SimRun` that `cosim.serving.metrics` turns into the reported figures.

A closed-loop request set (`RequestSet.closed_loop`, `concurrency` N > 0) keeps N requests in flight: the
first N arrive at t = 0 and each completion releases the next (zero think time), as genai-perf, vLLM
`benchmark_serving --max-concurrency`, SGLang bench_serving and trtllm-bench `--concurrency` load a server.
The run's `requests` then carry the arrival times the run produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cosim.errors import CosimInputError
from cosim.serving.kernel import PREEMPT_CODES, ROUTER_CODES, SCHED_CODES, simulate_kernel, simulate_reference
from cosim.serving.steptime import StepTimeTable

SCHEDULERS = ("continuous", "chunked", "disaggregated", "static")


@dataclass(frozen=True)
class RequestSet:
    """Requests to serve: arrival times (s, sorted), prompt and output lengths (tokens).

    `concurrency` N > 0 makes it a closed loop: requests 0..N-1 arrive at t = 0, and each later one when an
    earlier one completes (its `arrival_s` is a placeholder that `simulate` replaces).
    """

    arrival_s: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    offline: bool = False
    offered_qps: float | None = None
    duration_s: float | None = None
    concurrency: int = 0

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if n == 0:
            raise CosimInputError("no requests to simulate (raise --qps/--duration or --num-requests)")
        if len(self.input_len) != n or len(self.output_len) != n:
            raise CosimInputError("arrival_s, input_len and output_len must have the same length")
        if np.any(np.diff(self.arrival_s) < 0):
            raise CosimInputError("arrival times must be sorted")
        if np.any(self.input_len <= 0) or np.any(self.output_len <= 0):
            raise CosimInputError("input and output lengths must be positive")
        c = self.concurrency
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0:
            raise CosimInputError(f"concurrency must be an integer >= 0 (0: open loop), got {c}")
        if c and (self.offline or self.offered_qps is not None or self.duration_s is not None):
            raise CosimInputError("a closed-loop request set (--concurrency) has no offline mode, offered "
                                  "QPS or arrival window")
        if c and np.any(self.arrival_s[:c] < 0):
            raise CosimInputError("a closed-loop request set's first `concurrency` requests arrive at t >= 0")

    @classmethod
    def closed_loop(cls, input_len: np.ndarray, output_len: np.ndarray, concurrency: int,
                    stagger_s: float = 0.0) -> RequestSet:
        """N = `concurrency` clients with zero think time: the first N requests arrive at t = 0, every later
        one the moment an earlier one completes (the k-th completion releases request N + k).

        `stagger_s` > 0 starts client k at k x stagger_s / N instead: identical requests sent together finish
        together and stay in lock-step waves in a simulator, where a real server's jitter spreads them within
        a few requests; clients spread over one request's lifetime start in that steady state."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int | np.integer) or concurrency < 1:
            raise CosimInputError(f"--concurrency must be a positive integer, got {concurrency}")
        if not np.isfinite(stagger_s) or stagger_s < 0:
            raise CosimInputError(f"a closed loop's stagger must be a finite time >= 0 s, got {stagger_s}")
        arrival = np.zeros(len(input_len))
        first = min(int(concurrency), len(arrival))
        arrival[:first] = np.arange(first) * (float(stagger_s) / int(concurrency))
        arrival[first:] = arrival[first - 1] if first else 0.0  # placeholders, kept sorted; the run replaces them
        return cls(arrival, np.asarray(input_len), np.asarray(output_len), concurrency=int(concurrency))

    def __len__(self) -> int:
        return len(self.arrival_s)


@dataclass(frozen=True)
class ServingConfig:
    """How a fleet serves: replicas, router, scheduler limits, paged KV cache, preemption.

    `kv_capacity_tokens` is per replica. For `disaggregated`, `prefill_replicas` of the replicas
    form the prefill pool (default: half, at least one) and the rest decode; the KV cache of a
    prompt moves to the decode pool in `kv_transfer_latency_s + kv_transfer_s_per_token * input_len`.
    """

    kv_capacity_tokens: int
    replicas: int = 1
    scheduler: str = "continuous"
    router: str = "least_work"
    max_seqs: int = 256
    max_batched_tokens: int = 8192
    block_size: int = 16
    preemption: str = "recompute"
    swap_s_per_token: float = 0.0
    prefill_replicas: int | None = None
    pool_scheduler: str = "continuous"
    kv_transfer_s_per_token: float = 0.0
    kv_transfer_latency_s: float = 0.0

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise CosimInputError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        if self.router not in ROUTER_CODES:
            raise CosimInputError(f"router must be one of {', '.join(ROUTER_CODES)}, got '{self.router}'")
        if self.preemption not in PREEMPT_CODES:
            raise CosimInputError(f"preemption must be one of {', '.join(PREEMPT_CODES)}, got '{self.preemption}'")
        for name in ("replicas", "max_seqs", "max_batched_tokens", "block_size"):
            if int(getattr(self, name)) <= 0:
                raise CosimInputError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.kv_capacity_tokens < self.block_size:
            raise CosimInputError(f"KV cache holds {self.kv_capacity_tokens} tokens per replica, less than one "
                                  f"block of {self.block_size}")
        if self.scheduler == "disaggregated":
            if self.replicas < 2:
                raise CosimInputError("the disaggregated scheduler needs at least 2 replicas "
                                      "(one prefill, one decode); raise --chips")
            if self.pool_scheduler not in ("continuous", "chunked"):
                raise CosimInputError("disaggregated pools run the continuous or chunked scheduler")
            p = self.n_prefill
            if not 1 <= p < self.replicas:
                raise CosimInputError(f"prefill replicas must be between 1 and {self.replicas - 1}, got {p}")

    @property
    def total_blocks(self) -> int:
        return int(self.kv_capacity_tokens // self.block_size)

    @property
    def n_prefill(self) -> int:
        return self.prefill_replicas if self.prefill_replicas is not None else max(1, self.replicas // 2)


@dataclass
class SimRun:
    """Raw results: per-request times (s, NaN when not applicable) and the step timeline."""

    requests: RequestSet
    config: ServingConfig
    replica: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    scheduled_s: np.ndarray
    preemptions: np.ndarray
    busy_s: np.ndarray  # per replica (prefill pool first when disaggregated)
    timeline: np.ndarray  # rows: replica, start, end, seqs, tokens, prefill tokens, used blocks, waiting
    total_blocks: int
    notes: list[str] = field(default_factory=list)


def _run_pool(arrival, prompt, ctx0, gen0, out, replicas, sched, prefill_only, cfg: ServingConfig,
              table: StepTimeTable, reference: bool, concurrency: int = 0):
    fn = simulate_reference if reference else simulate_kernel
    return fn(np.ascontiguousarray(arrival, dtype=np.float64), np.ascontiguousarray(prompt, dtype=np.int64),
              np.ascontiguousarray(ctx0, dtype=np.int64), np.ascontiguousarray(gen0, dtype=np.int64),
              np.ascontiguousarray(out, dtype=np.int64), int(replicas), ROUTER_CODES[cfg.router],
              SCHED_CODES[sched], bool(prefill_only), int(cfg.max_seqs), int(cfg.max_batched_tokens),
              int(cfg.block_size), int(cfg.total_blocks), PREEMPT_CODES[cfg.preemption],
              float(cfg.swap_s_per_token), *table.arrays(), float(table.prompt_step_floor_s),
              np.asarray(table.graph_batch_sizes, dtype=np.float64), float(table.per_sequence_s),
              float(table.kv_window_tokens), float(table.kv_window_share), int(concurrency))


def check_fits(requests: RequestSet, cfg: ServingConfig) -> str | None:
    """A reason string when some request can never fit a replica's KV cache, else None."""
    need = -(-(requests.input_len + requests.output_len) // cfg.block_size)
    worst = int(np.argmax(need))
    if need[worst] > cfg.total_blocks:
        tokens = int(requests.input_len[worst] + requests.output_len[worst])
        return (f"request {worst} needs {tokens} tokens of KV cache but a replica holds "
                f"{cfg.total_blocks * cfg.block_size}")
    return None


def simulate(requests: RequestSet, table: StepTimeTable, cfg: ServingConfig, reference: bool = False) -> SimRun:
    """Simulate serving `requests`; raises CosimInputError if a request can never fit in KV memory.

    For a closed-loop set the returned run's `requests` hold the arrival times the run produced."""
    reason = check_fits(requests, cfg)
    if reason:
        raise CosimInputError(reason)
    n = len(requests)
    zeros = np.zeros(n, dtype=np.int64)
    if requests.concurrency and cfg.scheduler == "disaggregated":
        raise CosimInputError("--concurrency (closed loop) is not simulated with the disaggregated scheduler: "
                              "its prefill and decode pools run one after the other, so a completion cannot "
                              "release the next request; use continuous, chunked or static")
    if cfg.scheduler != "disaggregated":
        rep, first, fin, sch, npre, busy, tl, arrival = _run_pool(
            requests.arrival_s, requests.input_len, zeros, zeros, requests.output_len, cfg.replicas,
            cfg.scheduler, False, cfg, table, reference, requests.concurrency)
        if requests.concurrency:
            requests = replace(requests, arrival_s=arrival)
        return SimRun(requests, cfg, rep, first, fin, sch, npre, busy, tl, cfg.total_blocks)
    # ---- disaggregated: prefill pool, KV transfer, decode pool
    p = cfg.n_prefill
    d = cfg.replicas - p
    rep_p, first, fin_p, sch, npre_p, busy_p, tl_p, _ = _run_pool(
        requests.arrival_s, requests.input_len, zeros, zeros, requests.output_len, p, cfg.pool_scheduler,
        True, cfg, table, reference)
    finish = fin_p.copy()
    replica = rep_p.copy()
    preempt = npre_p.copy()
    busy = np.concatenate([busy_p, np.zeros(d)])
    tl = tl_p
    dec = np.nonzero(requests.output_len > 1)[0]
    if len(dec):
        ready = fin_p[dec] + cfg.kv_transfer_latency_s + cfg.kv_transfer_s_per_token * requests.input_len[dec]
        order = np.argsort(ready, kind="stable")
        idx = dec[order]
        rep_d, _, fin_d, _, npre_d, busy_d, tl_d, _ = _run_pool(
            ready[order], np.zeros(len(idx), dtype=np.int64), requests.input_len[idx],
            np.ones(len(idx), dtype=np.int64), requests.output_len[idx], d, cfg.pool_scheduler, False, cfg,
            table, reference)
        finish[idx] = fin_d
        replica[idx] = rep_d + p
        preempt[idx] += npre_d
        busy[p:] = busy_d
        tl_d = tl_d.copy()
        tl_d[:, 0] += p
        tl = np.concatenate([tl_p, tl_d])
    return SimRun(requests, cfg, replica, first, finish, sch, preempt, busy, tl, cfg.total_blocks)
