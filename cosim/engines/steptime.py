"""Step-time tables for the serving simulator: seconds per engine iteration over a grid.

`step_time_table(hw, workload, scenario, batch_tokens, contexts, kind)` returns an array of shape
(len(batch_tokens), len(contexts)):
- kind "decode": a decode step of `b` sequences (one new token each) attending to `c` cached tokens.
- kind "prefill": a prefill of `b` new tokens (one chunk of one request) whose attention also covers
  `c` tokens already in the cache (chunked prefill): the table of a `b`-token prompt with its attention
  rows extended by `c` keys (FLOPs scaled from `b (b + 1) / 2` to `b (b + 1) / 2 + b c` query-key pairs
  and the cached K/V read added).
Values are the latency of one iteration through the replica: pp stage steps, a decode step of `b`
sequences running as pp micro-batches of b / pp (cosim.engines.phases, `pipeline_micro_batch`). Memory
feasibility is not checked here: the simulator limits admissions by KV capacity itself. The simulator
interpolates (bi)linearly between grid points.
"""

from __future__ import annotations

import numpy as np

from cosim.errors import CosimInputError


def _with_context(table, context: float, chunk: int):
    from cosim.graph.optable import OpKind, OpTable

    if context <= 0:
        return table
    out = OpTable(**{k: v.copy() for k, v in table.__dict__.items()})
    att = (out.kind == int(OpKind.ATTENTION)) & (out.q_len > 0)  # q_len 0: a Mamba-2 scan, blind to the cache
    pairs = chunk * (chunk + 1) / 2.0
    out.flops[att] = out.flops[att] * (pairs + chunk * context) / pairs
    per_token = np.where(out.q_len[att] > 0, out.bytes_kv_write[att] / np.maximum(out.q_len[att], 1.0), 0.0)
    out.bytes_kv_read[att] = out.bytes_kv_read[att] + per_token * context
    out.kv_len[att] = out.kv_len[att] + context
    return out


def step_time_table(hardware, workload, scenario, batch_tokens: np.ndarray, contexts: np.ndarray,
                    kind: str = "decode", params=None) -> np.ndarray:
    """Seconds per step over the (batch_tokens x contexts) grid; see the module docstring."""
    from cosim.engines.efficiency import params_for
    from cosim.engines.hwarrays import HardwareArrays
    from cosim.engines.memory import footprint
    from cosim.engines.phases import graphs, kernel_run, pipeline_host_s, pipeline_micro_batch
    from cosim.specs.loader import load_hardware, load_workload

    if kind not in ("prefill", "decode"):
        raise CosimInputError(f"kind must be 'prefill' or 'decode', got '{kind}'")
    hw = load_hardware(hardware)
    wl = load_workload(workload)
    params = params or params_for(hw)
    hwa = HardwareArrays.from_hardware(hw)
    build = graphs()
    bt = np.asarray(batch_tokens, dtype=np.int64)
    cs = np.asarray(contexts, dtype=np.int64)
    if np.any(bt <= 0) or np.any(cs < 0):
        raise CosimInputError("batch_tokens must be positive and contexts non-negative")
    dp = scenario.parallelism.dp
    out = np.empty((len(bt), len(cs)))
    wfoot = footprint(wl, scenario.model_copy(update={"batch": dp})).weights  # decides on-chip weight residency
    for a, b in enumerate(bt):
        for c_idx, c in enumerate(cs):
            if kind == "decode":
                sc = pipeline_micro_batch(scenario.model_copy(update={"batch": int(b) * dp, "phase": "decode"}))
                table = build.decode_graph(wl, sc, int(c))
            else:
                sc = scenario.model_copy(update={"batch": dp, "phase": "prefill", "input_len": int(b)})
                table = _with_context(build.prefill_graph(wl, sc), float(c), int(b))
            seqs = sc.batch // dp if kind == "decode" else 1  # host work per running sequence per iteration
            p = params.with_overrides(step_overhead_s=params.step_overhead_s
                                      + (params.per_sequence_overhead_s + params.per_sequence_busy_s) * seqs)
            r = kernel_run(hwa, table, p, foot=0.0, wfoot=wfoot)
            out[a, c_idx] = r["step_time_s"][0] * scenario.parallelism.pp
            if kind == "decode":  # a pipelined iteration waits for its host's work on all the rank's sequences
                out[a, c_idx] += pipeline_host_s(params, scenario.model_copy(update={"batch": int(b) * dp}))
    return out
