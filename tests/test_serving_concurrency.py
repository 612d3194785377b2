"""Closed-loop (fixed concurrency) serving against hand calculations on an affine step-time model.

N clients, zero think time: the first N requests arrive at t = 0 and the k-th completion (in time order)
releases request N + k at its completion time (genai-perf, vLLM benchmark_serving --max-concurrency,
trtllm-bench --concurrency).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.main import main
from cosim.errors import CosimInputError
from cosim.serving.metrics import in_system, latency_arrays, summarize
from cosim.serving.service import make_requests
from cosim.serving.simulator import RequestSet, ServingConfig, simulate
from cosim.serving.steptime import AffineStepTime

A, B, C, D = 0.01, 1e-4, 1e-6, 1e-9  # overhead, per token, per cached token read, per causal pair
TABLE = AffineStepTime(A, B, C, D).table()
FLAT = AffineStepTime(A, B).table()  # prefill of L tokens: A + B L; every decode step of one sequence: A + B
AMPLE = dict(kv_capacity_tokens=10_000_000, max_seqs=256, max_batched_tokens=1 << 20)


def prefill_s(k: int, L: int) -> float:
    """One iteration prefilling k prompts of L tokens on TABLE."""
    return A + B * k * L + D * k * L * (L + 1) / 2


def wave_s(k: int, L: int, OUT: int) -> float:
    """k identical requests together: a prefill, then OUT - 1 decode steps; step j reads k (L + j) keys."""
    return prefill_s(k, L) + (OUT - 1) * (A + B * k + C * k * L) + C * k * (OUT - 1) * OUT / 2


@pytest.mark.parametrize("sched", ["continuous", "chunked", "static"])
def test_concurrency_one_runs_requests_back_to_back(sched):
    n, L, OUT = 7, 300, 25
    run = simulate(RequestSet.closed_loop(np.full(n, L), np.full(n, OUT), 1), FLAT,
                   ServingConfig(scheduler=sched, **AMPLE))
    prefill, decode = A + B * L, A + B
    per_request = prefill + (OUT - 1) * decode
    lat = latency_arrays(run)
    np.testing.assert_allclose(lat["ttft"], prefill, rtol=1e-12)
    np.testing.assert_allclose(lat["tpot"], decode, rtol=1e-12)
    # each request arrives when its predecessor finishes, so the reported arrivals are the real ones
    np.testing.assert_allclose(run.requests.arrival_s, np.arange(n) * per_request, rtol=1e-12, atol=0)
    s = summarize(run)
    assert s["duration_s"] == pytest.approx(n * per_request, rel=1e-12)
    assert s["output_tokens_per_s"] == pytest.approx(n * OUT / (n * per_request), rel=1e-12)
    assert s["concurrency"] == 1 and s["sustainable"] is True


@pytest.mark.parametrize("sched", ["continuous", "chunked", "static"])
def test_n_identical_requests_at_concurrency_n_are_one_batch(sched):
    N, L, OUT = 6, 200, 30
    cfg = ServingConfig(scheduler=sched, **AMPLE)
    closed = simulate(RequestSet.closed_loop(np.full(N, L), np.full(N, OUT), N), TABLE, cfg)
    np.testing.assert_allclose(closed.first_token_s, prefill_s(N, L), rtol=1e-12)
    np.testing.assert_allclose(closed.finish_s, wave_s(N, L, OUT), rtol=1e-12)
    # the same as an offline batch, and more clients than requests change nothing
    offline = simulate(RequestSet(np.zeros(N), np.full(N, L), np.full(N, OUT), offline=True), TABLE, cfg)
    more = simulate(RequestSet.closed_loop(np.full(N, L), np.full(N, OUT), N + 3), TABLE, cfg)
    for run in (offline, more):
        np.testing.assert_array_equal(closed.finish_s, run.finish_s)
        np.testing.assert_array_equal(closed.timeline, run.timeline)


def test_identical_requests_run_in_waves_of_n():
    N, waves, L, OUT = 4, 3, 150, 20
    n = N * waves
    run = simulate(RequestSet.closed_loop(np.full(n, L), np.full(n, OUT), N), TABLE,
                   ServingConfig(scheduler="continuous", **AMPLE))
    w = wave_s(N, L, OUT)
    wave_of = np.arange(n) // N
    np.testing.assert_allclose(run.requests.arrival_s, wave_of * w, rtol=1e-12, atol=0)
    np.testing.assert_allclose(latency_arrays(run)["ttft"], prefill_s(N, L), rtol=1e-9)
    assert summarize(run)["duration_s"] == pytest.approx(waves * w, rel=1e-12)


@pytest.mark.parametrize("router", ["least_work", "round_robin"])
@pytest.mark.parametrize("replicas", [1, 3])
def test_kth_completion_releases_request_n_plus_k(router, replicas):
    rng = np.random.default_rng(5)
    n, N = 120, 9
    run = simulate(RequestSet.closed_loop(rng.integers(1, 500, n), rng.integers(1, 90, n), N), TABLE,
                   ServingConfig(kv_capacity_tokens=4000, replicas=replicas, router=router, max_seqs=8,
                                 max_batched_tokens=512))
    arr = run.requests.arrival_s
    assert np.all(arr[:N] == 0.0) and np.all(np.diff(arr) >= 0)
    np.testing.assert_array_equal(arr[N:], np.sort(run.finish_s)[: n - N])
    assert np.all(run.first_token_s > arr) and np.all(run.scheduled_s >= arr)


@pytest.mark.parametrize("replicas", [1, 2])
def test_littles_law_holds_n_in_flight(replicas):
    rng = np.random.default_rng(8)
    N = 8
    n = 60 * N
    run = simulate(RequestSet.closed_loop(rng.integers(50, 400, n), rng.integers(10, 120, n), N), TABLE,
                   ServingConfig(kv_capacity_tokens=1_000_000, replicas=replicas))
    arr, fin = run.requests.arrival_s, run.finish_s
    events = np.unique(np.concatenate([arr, fin]))
    mids = 0.5 * (events[1:] + events[:-1])
    inside = in_system(run, mids)
    # until the last request is sent, exactly N are in flight
    assert np.all(inside[mids < arr[-1]] == N)
    # time-averaged requests in flight (piecewise constant between events) = throughput x mean latency ~ N
    makespan = float(fin.max())
    mean_in_flight = float(np.sum(inside * np.diff(events))) / makespan
    s = summarize(run)
    assert s["duration_s"] == pytest.approx(makespan, rel=1e-12)
    lam_w = s["requests_per_s"] * float(np.mean(latency_arrays(run)["e2e"]))
    assert mean_in_flight == pytest.approx(lam_w, rel=1e-9)
    assert mean_in_flight == pytest.approx(N, rel=0.05)
    assert mean_in_flight <= N


@pytest.mark.parametrize("sched", ["static", "continuous", "chunked"])
@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_kernel_matches_reference_in_closed_loop(sched, preemption):
    rng = np.random.default_rng(3)
    n = 60
    req = RequestSet.closed_loop(rng.integers(1, 200, n), rng.integers(1, 60, n), 12)
    cfg = ServingConfig(kv_capacity_tokens=600, replicas=2, scheduler=sched, max_seqs=8,
                        max_batched_tokens=128 if sched == "chunked" else 512, preemption=preemption,
                        swap_s_per_token=1e-5)
    fast = simulate(req, TABLE, cfg)
    ref = simulate(req, TABLE, cfg, reference=True)
    np.testing.assert_array_equal(fast.requests.arrival_s, ref.requests.arrival_s)
    np.testing.assert_array_equal(fast.first_token_s, ref.first_token_s)
    np.testing.assert_array_equal(fast.finish_s, ref.finish_s)
    np.testing.assert_array_equal(fast.timeline, ref.timeline)
    if sched != "static":
        assert fast.preemptions.sum() > 0  # the tight KV cache exercises preemption


def _open_loop_case():
    rng = np.random.default_rng(2024)
    n = 80
    t = np.sort(rng.uniform(0, 4, n))
    return t, rng.integers(1, 400, n), rng.integers(1, 80, n)


# (sum of finish times, sum of first-token times, preemptions, iterations), recorded from the open-loop
# simulator before closed loops were added
OPEN_LOOP_BEFORE = {"static": (622.1639916948162, 588.4967746948162, 0, 2990),
                    "continuous": (197.49748169907986, 143.72568331707984, 7, 679),
                    "chunked": (187.57149964829014, 141.50705536929016, 1, 674)}


@pytest.mark.parametrize("sched", list(OPEN_LOOP_BEFORE))
def test_open_loop_unchanged_by_concurrency_zero(sched):
    t, ins, outs = _open_loop_case()
    cfg = ServingConfig(kv_capacity_tokens=2000, replicas=2, scheduler=sched, max_seqs=16, max_batched_tokens=256)
    plain = simulate(RequestSet(t, ins, outs), TABLE, cfg)
    zero = simulate(RequestSet(t, ins, outs, concurrency=0), TABLE, cfg)
    for name in ("replica", "first_token_s", "finish_s", "scheduled_s", "preemptions", "busy_s", "timeline"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(zero, name))
    np.testing.assert_array_equal(zero.requests.arrival_s, t)
    fin, first, npre, steps = OPEN_LOOP_BEFORE[sched]
    assert float(plain.finish_s.sum()) == pytest.approx(fin, rel=1e-12)
    assert float(plain.first_token_s.sum()) == pytest.approx(first, rel=1e-12)
    assert int(plain.preemptions.sum()) == npre and len(plain.timeline) == steps
    assert "concurrency" not in summarize(plain)


def test_closed_loop_input_errors():
    ins, outs = np.full(4, 10), np.full(4, 5)
    with pytest.raises(CosimInputError, match="concurrency"):
        RequestSet.closed_loop(ins, outs, 0)
    with pytest.raises(CosimInputError, match="concurrency"):
        RequestSet(np.zeros(4), ins, outs, concurrency=-1)
    with pytest.raises(CosimInputError, match="offline"):
        RequestSet(np.zeros(4), ins, outs, offline=True, concurrency=2)
    with pytest.raises(CosimInputError, match="t >= 0"):
        RequestSet(np.array([-1.0, 1.0, 2.0, 3.0]), ins, outs, concurrency=2)
    with pytest.raises(CosimInputError, match="stagger"):
        RequestSet.closed_loop(ins, outs, 2, stagger_s=-1.0)
    with pytest.raises(CosimInputError, match="disaggregated"):
        simulate(RequestSet.closed_loop(ins, outs, 2), TABLE,
                 ServingConfig(kv_capacity_tokens=10_000, replicas=2, scheduler="disaggregated"))


def test_make_requests_closed_loop(tmp_path):
    req = make_requests(offline=False, num_requests=None, qps=None, duration_s=None, input_len="64",
                        output_len="uniform:1:9", concurrency=3)
    assert len(req) == 30 and req.concurrency == 3 and np.all(req.arrival_s == 0)
    assert len(make_requests(offline=False, num_requests=7, qps=None, duration_s=None, input_len="64",
                             output_len="8", concurrency=3)) == 7
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_time_s,input_len,output_len\n0.0,100,5\n0.2,50,7\n9.0,80,3\n")
    tr = make_requests(offline=False, num_requests=None, qps=None, duration_s=None, input_len=f"trace:{trace}",
                       output_len=f"trace:{trace}", concurrency=2)
    assert tr.input_len.tolist() == [100, 50, 80] and tr.concurrency == 2 and np.all(tr.arrival_s == 0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 24), L=st.integers(1, 300), OUT=st.integers(1, 40),
       sched=st.sampled_from(["continuous", "chunked", "static"]))
def test_more_clients_never_lower_throughput_for_identical_requests(n, L, OUT, sched):
    """Identical requests (all prompts of a wave fit one iteration) run in ceil(n / N) synchronous waves, so the
    makespan is the sum of the waves' closed forms and never grows with N (a wave costs A + (cost per request)
    x k, and fewer waves pay the overhead A fewer times)."""
    cfg = ServingConfig(scheduler=sched, **AMPLE)
    prev = 0.0
    for N in range(1, n + 2):
        s = summarize(simulate(RequestSet.closed_loop(np.full(n, L), np.full(n, OUT), N), TABLE, cfg))
        full, rest = divmod(n, N)
        makespan = full * wave_s(N, L, OUT) + (wave_s(rest, L, OUT) if rest else 0.0)
        assert s["duration_s"] == pytest.approx(makespan, rel=1e-9)
        assert s["requests_per_s"] >= prev * (1 - 1e-9)
        prev = s["requests_per_s"]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 20), budget=st.sampled_from([1, 16, 64, 512]))
def test_more_clients_never_lower_chunked_throughput(seed, n, budget):
    """Mixed lengths, chunked prefill, one replica, ample KV: no replica ever idles in a closed loop and the
    total work (tokens, KV reads, causal pairs) is fixed, so the makespan is A x iterations + a constant; more
    clients never needed more iterations here. This does NOT hold exactly for the continuous (prefill-first)
    or static schedulers with mixed lengths: more clients can add prefill-only iterations that stall every
    decode (continuous, about 1% slower seen) or pad batches to a longer member (static)."""
    rng = np.random.default_rng(seed)
    ins, outs = rng.integers(1, 400, n), rng.integers(1, 60, n)
    cfg = ServingConfig(kv_capacity_tokens=10_000_000, scheduler="chunked", max_batched_tokens=budget)
    tput = [summarize(simulate(RequestSet.closed_loop(ins, outs, N), TABLE, cfg))["requests_per_s"]
            for N in range(1, n + 1)]
    assert all(b >= a * (1 - 1e-12) for a, b in zip(tput, tput[1:], strict=False))


# ---- CLI
BASE = ["serve", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--precision", "bf16", "--chips", "1",
        "--input-len", "256", "--output-len", "32"]


@pytest.mark.parametrize("args, needle", [
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "-2"], "--concurrency"),
    (["--concurrency", "4", "--qps", "2", "--duration", "10"], "--qps"),
    (["--concurrency", "4", "--offline", "--num-requests", "8"], "--offline"),
    (["--concurrency", "4", "--find-max-qps"], "--find-max-qps"),
    (["--concurrency", "4", "--scheduler", "disaggregated"], "disaggregated"),
])
def test_cli_concurrency_refusals_exit_2_with_one_line(capsys, args, needle):
    code = main(BASE + args)
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_cli_concurrency_json_and_table(capsys):
    code = main(BASE + ["--concurrency", "3", "--stagger", "0", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    assert res["feasible"] is True and res["concurrency"] == 3 and res["num_requests"] == 30
    assert res["offline"] is False and res["sustainable"] is True
    for key in ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s"):
        assert res[key] is not None and res[key] > 0
    # identical requests in waves of 3: every request waits only for its own wave's prefill
    assert res["ttft_p50_s"] == pytest.approx(res["ttft_p99_s"], rel=1e-9)
    assert res["output_tokens_per_s"] == pytest.approx(30 * 32 / res["duration_s"], rel=1e-12)
    code = main(BASE + ["--concurrency", "2", "--num-requests", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "concurrency" in out and "closed loop of 2 clients" in err
    row = next(line for line in out.splitlines() if "num_requests" in line)
    assert math.isclose(float(row.split()[-2]), 5)


def test_staggered_clients_start_apart():
    # 4 clients started 1 s / 4 apart, one request each, on FLAT: a request (prefill A + B L, then OUT - 1
    # single decodes) takes 0.05 + 19 x 0.0101 = 0.2419 s < 0.25 s, so each runs alone: arrivals j / 4, TTFT one
    # prefill, TPOT one decode step
    c, L, OUT = 4, 400, 20
    run = simulate(RequestSet.closed_loop(np.full(c, L), np.full(c, OUT), c, stagger_s=1.0), FLAT,
                   ServingConfig(scheduler="continuous", **AMPLE))
    lat = latency_arrays(run)
    np.testing.assert_allclose(run.requests.arrival_s, np.arange(c) * 0.25, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lat["ttft"], A + B * L, rtol=1e-12)
    np.testing.assert_allclose(lat["tpot"], A + B, rtol=1e-12)


def test_staggered_sends_meet_earlier_releases_in_time_order():
    # 2 clients 10 s apart on FLAT, 6 requests: each client sends one, and the 4 completions release 4 more;
    # client 0's requests (0.2419 s each) complete before client 1 starts, so its 4 releases are sent before
    # client 1's first send, and the requests take the send times in time order
    n, L, OUT = 6, 400, 20
    run = simulate(RequestSet.closed_loop(np.full(n, L), np.full(n, OUT), 2, stagger_s=20.0), FLAT,
                   ServingConfig(scheduler="continuous", **AMPLE))
    per_request = (A + B * L) + (OUT - 1) * (A + B)
    want = np.concatenate([np.arange(n - 1) * per_request, [10.0]])
    np.testing.assert_allclose(run.requests.arrival_s, want, rtol=1e-12, atol=1e-15)


def test_cli_stagger_auto_spreads_the_lock_step_waves(capsys):
    # all 8 clients at t = 0: identical requests finish together and every wave's 8 prompts queue behind each
    # other; spread over one request's lifetime (auto), a request waits for at most the prompts in flight
    runs = {}
    for stagger in ("0", "auto"):
        code = main(BASE + ["--concurrency", "8", "--stagger", stagger, "--format", "json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        runs[stagger] = json.loads(out)
    assert runs["auto"]["ttft_mean_s"] < runs["0"]["ttft_mean_s"]
    # both runs keep 8 requests in flight: throughput within the ramp and drain of 10 requests per client
    assert runs["auto"]["output_tokens_per_s"] == pytest.approx(runs["0"]["output_tokens_per_s"], rel=0.15)


@pytest.mark.parametrize("bad", ["-1", "soon", "inf"])
def test_cli_stagger_refuses_bad_values(capsys, bad):
    code = main(BASE + ["--concurrency", "2", "--stagger", bad])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--stagger" in err


def test_cli_stagger_needs_a_closed_loop(capsys):
    code = main(BASE + ["--offline", "--num-requests", "4", "--stagger", "2"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--concurrency" in err
