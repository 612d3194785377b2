"""Session 41's validation additions: closed-loop (fixed-concurrency) rows, and Gaudi's static-batch rows.

Closed-loop rows: the three kinds of one run obey the closed loop's own identity (each client completes a
request every TTFT + (OUT - 1) x ITL seconds, so output tokens/s = N x OUT / that, by Little's law), and at one
client the ITL is a single sequence's decode step. Gaudi: only the generations listed in STATIC_FIT_GENERATIONS
fit their scales on static-batch rows; every other generation's static batches stay out of sample.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cosim.validate.fit import STATIC_FIT_GENERATIONS, STATIC_METRIC, generation_of, static_fit_rows
from cosim.validate.mapping import CONCURRENCY_KINDS, load_mapping
from cosim.validate.predict import predict

NIM = "nim-1.8-llama3.3-70b-h100-tp2-5000-500-c{c}-{k}"


@pytest.mark.parametrize("c", [1, 25, 150])
def test_closed_loop_kinds_obey_littles_law(c):
    m = load_mapping()
    ttft, itl, tput = (predict(m.rows[NIM.format(c=c, k=k)], m)[0] for k in ("ttft", "itl", "tput"))
    assert ttft > 0 and itl > 0 and tput > 0
    # N clients, each with one request in flight for TTFT + (OUT - 1) ITL on average: N x OUT / that in the
    # steady state; the run's makespan adds its ramp (clients started over one request's lifetime: half a
    # lifetime lost on average) and its drain (half another) to the 10 lifetimes of 10 requests per client,
    # so the run's rate sits up to about a tenth below the steady state's, never above it
    steady = c * 500 / (ttft + 499 * itl)
    assert 0.88 * steady <= tput <= 1.01 * steady


def test_one_client_decodes_one_sequence_per_step():
    from cosim.engines.estimate import estimate
    from cosim.specs.scenario import Parallelism, Scenario

    m = load_mapping()
    itl = predict(m.rows[NIM.format(c=1, k="itl")], m)[0]
    # the decode step of one sequence of 5,250 cached tokens (mid-output) on the same two H100s
    sc = Scenario(phase="decode", batch=1, input_len=5250, weight_precision="fp8", kv_precision="fp8",
                  parallelism=Parallelism(tp=2))
    step = estimate("h100-sxm", "llama-3.3-70b", sc, chips=2).tpot_s
    assert itl == pytest.approx(step, rel=0.10)
    # and it is bounded below by streaming the FP8 weights once (70.6e9 B / 2 GPUs at 3.35 TB/s)
    assert itl > 70.6e9 / 2 / 3.35e12


def test_every_closed_loop_row_names_its_concurrency():
    m = load_mapping()
    rows = [q for q in m.rows.values() if q.kind in CONCURRENCY_KINDS]
    assert len(rows) == 28 and all(q.concurrency for q in rows)


def test_static_batches_fit_only_the_generations_that_have_nothing_else():
    table = pd.DataFrame({
        "metric": [STATIC_METRIC, STATIC_METRIC, STATIC_METRIC, STATIC_METRIC, "offline_throughput"],
        "workload_class": ["dense", "moe", "dense", "dense", "dense"],
        "generation": ["intel-gaudi3", "intel-gaudi3", "nvidia-ampere", "intel-gaudi2", "nvidia-hopper"],
    })
    held = pd.Series([True, True, True, True, False])
    fitted = static_fit_rows(table, held)
    # Gaudi's dense static batches fit; its MoE ones (the shared MoE shares) and Ampere's stay held out
    assert fitted.tolist() == [True, False, False, True, False]
    assert {generation_of("gaudi2"), generation_of("gaudi3")} == set(STATIC_FIT_GENERATIONS)
