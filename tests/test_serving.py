"""Serving simulator against hand calculations on a closed-form (affine) step-time model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.errors import CosimInputError
from cosim.serving.kernel import TL_END, TL_PREFILL_TOKENS, TL_START, TL_TOKENS
from cosim.serving.metrics import Slo, in_system, latency_arrays, summarize, waiting
from cosim.serving.requests import LengthDist, arrival_times, parse_length_spec, read_trace
from cosim.serving.search import LIGHT_LOAD_FRACTION, find_max_qps
from cosim.serving.simulator import RequestSet, ServingConfig, simulate
from cosim.serving.steptime import AffineStepTime

A, B, C, D = 0.01, 1e-4, 1e-6, 1e-9  # overhead, per token, per cached token read, per causal pair
MODEL = AffineStepTime(A, B, C, D)
TABLE = MODEL.table()
UNIT = AffineStepTime(1.0, 0.0).table()  # every iteration takes exactly 1 s


def one(L: int, OUT: int) -> RequestSet:
    return RequestSet(np.array([0.0]), np.array([L]), np.array([OUT]))


@pytest.mark.parametrize("sched", ["continuous", "chunked", "static"])
def test_lone_request_ttft_tpot_match_closed_form(sched):
    L, OUT = 300, 40
    run = simulate(one(L, OUT), TABLE, ServingConfig(kv_capacity_tokens=100_000, scheduler=sched))
    lat = latency_arrays(run)
    ttft = A + B * L + D * L * (L + 1) / 2  # one prefill iteration of L tokens
    # decode step k (k = 1..OUT-1) feeds one token and reads L + k cached keys: mean context L + OUT/2
    tpot = A + B + C * (L + OUT / 2)
    assert lat["ttft"][0] == pytest.approx(ttft, rel=1e-12)
    assert lat["tpot"][0] == pytest.approx(tpot, rel=1e-12)
    assert lat["e2e"][0] == pytest.approx(ttft + (OUT - 1) * tpot, rel=1e-12)


def test_kernel_matches_plain_python_reference():
    rng = np.random.default_rng(3)
    n = 60
    t = np.sort(rng.exponential(0.05, n).cumsum())
    req = RequestSet(t, rng.integers(1, 200, n), rng.integers(1, 60, n))
    for sched in ("static", "continuous", "chunked", "disaggregated"):
        for pre in ("recompute", "swap"):
            cfg = ServingConfig(kv_capacity_tokens=600, replicas=2, scheduler=sched, max_seqs=8,
                                max_batched_tokens=128 if sched == "chunked" else 512, block_size=16,
                                preemption=pre, swap_s_per_token=1e-5, kv_transfer_s_per_token=1e-6)
            fast = simulate(req, TABLE, cfg)
            ref = simulate(req, TABLE, cfg, reference=True)
            np.testing.assert_array_equal(fast.finish_s, ref.finish_s)
            np.testing.assert_array_equal(fast.first_token_s, ref.first_token_s)
            np.testing.assert_array_equal(fast.timeline, ref.timeline)


def test_static_vs_continuous_hand_case():
    # every iteration 1 s; max 2 sequences; r0 = (1 in, 4 out), r1 = r2 = (1 in, 1 out), all at t = 0
    req = RequestSet(np.zeros(3), np.array([1, 1, 1]), np.array([4, 1, 1]), offline=True)
    static = simulate(req, UNIT, ServingConfig(kv_capacity_tokens=1024, scheduler="static", max_seqs=2))
    cont = simulate(req, UNIT, ServingConfig(kv_capacity_tokens=1024, scheduler="continuous", max_seqs=2))
    # static: batch {r0, r1} prefill at 1 (r1 done), decode padded to 4; then r2 prefilled at 5
    np.testing.assert_array_equal(static.finish_s, [4.0, 1.0, 5.0])
    # continuous: r2 takes r1's slot at 2 (prefill first), r0 decodes at 3, 4, 5
    np.testing.assert_array_equal(cont.finish_s, [5.0, 1.0, 2.0])
    assert np.mean(latency_arrays(cont)["e2e"]) < np.mean(latency_arrays(static)["e2e"])


def test_chunked_prefill_bounds_tokens_per_iteration():
    req = RequestSet(np.zeros(5), np.array([1000, 10, 700, 5, 300]), np.array([20, 30, 5, 40, 10]), offline=True)
    run = simulate(req, UNIT, ServingConfig(kv_capacity_tokens=10_000, scheduler="chunked", max_batched_tokens=256))
    assert run.timeline[:, TL_TOKENS].max() <= 256
    # the 1000-token prompt alone needs ceil(1000 / 256) = 4 iterations of 1 s
    assert run.first_token_s[0] == pytest.approx(4.0)
    # the other schedulers prefill it in one iteration
    cont = simulate(req, UNIT, ServingConfig(kv_capacity_tokens=10_000, scheduler="continuous", max_batched_tokens=256))
    assert cont.timeline[:, TL_PREFILL_TOKENS].max() == 1000


def _poisson(qps, duration, seed, L=200, OUT=100):
    rng = np.random.default_rng(seed)
    t = arrival_times("poisson", qps, duration, rng)
    return RequestSet(t, np.full(len(t), L), np.full(len(t), OUT), offered_qps=qps, duration_s=duration)


def test_littles_law_on_a_long_stable_run():
    req = _poisson(4.0, 4000.0, seed=11)
    run = simulate(req, TABLE, ServingConfig(kv_capacity_tokens=200_000, replicas=1, max_seqs=64))
    e2e = latency_arrays(run)["e2e"]
    t1, t2 = 500.0, 3500.0
    grid = np.linspace(t1, t2, 300_001)
    mean_in_system = float(np.mean(in_system(run, grid)))
    inside = (req.arrival_s >= t1) & (req.arrival_s < t2)
    lam = inside.sum() / (t2 - t1)
    assert mean_in_system == pytest.approx(lam * e2e[inside].mean(), rel=0.02)
    assert summarize(run)["sustainable"]


def _capacity_rps():
    req = RequestSet(np.zeros(400), np.full(400, 200), np.full(400, 100), offline=True)
    return summarize(simulate(req, TABLE, ServingConfig(kv_capacity_tokens=200_000, max_seqs=64)))["requests_per_s"]


def test_overload_grows_the_queue_and_is_reported_unsustainable():
    cap = _capacity_rps()
    req = _poisson(2.0 * cap, 60.0, seed=5)
    run = simulate(req, TABLE, ServingConfig(kv_capacity_tokens=200_000, max_seqs=64))
    w = waiting(run, np.array([15.0, 30.0, 45.0, 60.0]))
    assert np.all(np.diff(w) > 0)
    s = summarize(run)
    assert s["sustainable"] is False and "unsustainable" in s["unsustainable_reason"]
    light = summarize(simulate(_poisson(0.3 * cap, 60.0, seed=5), TABLE,
                               ServingConfig(kv_capacity_tokens=200_000, max_seqs=64)))
    assert light["sustainable"] is True


def test_identical_seeds_identical_results():
    a = summarize(simulate(_poisson(5.0, 50.0, seed=7), TABLE, ServingConfig(kv_capacity_tokens=50_000)))
    b = summarize(simulate(_poisson(5.0, 50.0, seed=7), TABLE, ServingConfig(kv_capacity_tokens=50_000)))
    c = summarize(simulate(_poisson(5.0, 50.0, seed=8), TABLE, ServingConfig(kv_capacity_tokens=50_000)))
    assert a == b
    assert a["e2e_p99_s"] != c["e2e_p99_s"]


def test_offline_throughput_non_decreasing_in_kv_memory():
    rng = np.random.default_rng(1)
    n = 300
    req = RequestSet(np.zeros(n), rng.integers(50, 400, n), rng.integers(20, 300, n), offline=True)
    tputs = []
    for cap in (2_000, 4_000, 8_000, 16_000, 32_000, 64_000):
        s = summarize(simulate(req, TABLE, ServingConfig(kv_capacity_tokens=cap, max_seqs=256)))
        tputs.append(s["output_tokens_per_s"])
    assert all(b >= a * (1 - 1e-9) for a, b in zip(tputs, tputs[1:], strict=False))
    assert tputs[-1] > 1.5 * tputs[0]


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_preemption_when_kv_runs_out_completes_every_request(mode):
    req = RequestSet(np.zeros(40), np.full(40, 100), np.full(40, 200), offline=True)
    run = simulate(req, TABLE, ServingConfig(kv_capacity_tokens=1_200, preemption=mode, swap_s_per_token=1e-6))
    assert run.preemptions.sum() > 0
    assert np.all(np.isfinite(run.finish_s))
    assert summarize(run)["kv_utilisation_peak"] <= 1.0


def test_disaggregated_adds_the_kv_transfer_to_a_lone_request():
    L, OUT, per_tok, lat = 300, 40, 2e-6, 1e-3
    cfg = ServingConfig(kv_capacity_tokens=100_000, replicas=2, scheduler="disaggregated",
                        kv_transfer_s_per_token=per_tok, kv_transfer_latency_s=lat)
    run = simulate(one(L, OUT), TABLE, cfg)
    ttft = A + B * L + D * L * (L + 1) / 2
    tpot = A + B + C * (L + OUT / 2)
    assert run.first_token_s[0] == pytest.approx(ttft)
    assert run.finish_s[0] == pytest.approx(ttft + lat + per_tok * L + (OUT - 1) * tpot)
    assert run.replica[0] == 1  # decode pool


def test_round_robin_and_least_work_spread_requests():
    req = RequestSet(np.zeros(8), np.full(8, 10), np.array([100, 1, 1, 1, 100, 1, 1, 1]), offline=True)
    rr = simulate(req, UNIT, ServingConfig(kv_capacity_tokens=10_000, replicas=2, router="round_robin"))
    np.testing.assert_array_equal(rr.replica, [0, 1, 0, 1, 0, 1, 0, 1])
    lw = simulate(req, UNIT, ServingConfig(kv_capacity_tokens=10_000, replicas=2, router="least_work"))
    assert lw.replica[0] != lw.replica[4]  # the two long requests go to different replicas


def test_goodput_and_slo():
    req = _poisson(2.0, 100.0, seed=2)
    run = simulate(req, TABLE, ServingConfig(kv_capacity_tokens=100_000))
    lat = latency_arrays(run)
    limit = float(np.median(lat["ttft"]))
    s = summarize(run, Slo(ttft_s=limit))
    expect = np.sum(lat["ttft"] <= limit) / s["duration_s"]
    assert s["goodput_requests_per_s"] == pytest.approx(expect)
    assert s["slo_met"] is False  # p99 above the median


def test_max_qps_search_brackets_capacity():
    cap = _capacity_rps()
    cfg = ServingConfig(kv_capacity_tokens=200_000, max_seqs=64)
    res = find_max_qps(lambda q: _poisson(q, 100.0, seed=4), TABLE, cfg, cap)
    assert res.max_qps is not None
    assert 0.5 * cap < res.max_qps <= 1.25 * cap
    strict = find_max_qps(lambda q: _poisson(q, 100.0, seed=4), TABLE, cfg, cap, Slo(ttft_s=0.2, tpot_s=0.05))
    assert strict.max_qps is None or strict.max_qps <= res.max_qps


def test_max_qps_search_probes_the_light_load_floor_only_when_nothing_faster_passes():
    cap = _capacity_rps()
    cfg = ServingConfig(kv_capacity_tokens=200_000, max_seqs=64)
    floor = LIGHT_LOAD_FRACTION * cap
    res = find_max_qps(lambda q: _poisson(q, 100.0, seed=4), TABLE, cfg, cap)
    assert all(q > floor for q, _ in res.probes)  # a faster rate passed: the slow floor run was never needed
    passed = [q for q, ok in res.probes if ok]
    assert res.max_qps == max(passed) and all(q > res.max_qps for q, ok in res.probes if not ok)
    # an SLO no load can meet: every bisection rate fails, then the floor, probed last, fails too
    never = find_max_qps(lambda q: _poisson(q, 100.0, seed=4), TABLE, cfg, cap, Slo(ttft_s=1e-9), max_probes=6)
    assert never.max_qps is None and len(never.probes) == 6
    assert never.probes[-1][0] == pytest.approx(floor) and not any(ok for _, ok in never.probes)


def test_lengths_and_arrivals():
    rng = np.random.default_rng(0)
    assert parse_length_spec("128").sample(3, rng).tolist() == [128, 128, 128]
    u = parse_length_spec("uniform:10:20").sample(5000, rng)
    assert u.min() >= 10 and u.max() <= 20
    ln = parse_length_spec("lognormal:500:0.5").sample(200_000, rng)
    assert ln.mean() == pytest.approx(500, rel=0.01)
    prof = parse_length_spec("profile:openorca", "output", "--output-len")
    assert isinstance(prof, LengthDist) and prof.mean == pytest.approx(294.45)
    assert parse_length_spec("trace:x.csv") == "x.csv"
    for bad in ("0", "-3", "uniform:5:2", "lognormal:0:1", "profile:nope", "weird:1:2:3:4"):
        with pytest.raises(CosimInputError):
            parse_length_spec(bad)
    t = arrival_times("constant", 4.0, 10.0, rng)
    np.testing.assert_allclose(np.diff(t), 0.25)
    g = arrival_times("gamma", 50.0, 2000.0, rng, cv=2.0)
    gaps = np.diff(g)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.05)
    assert len(g) / 2000.0 == pytest.approx(50.0, rel=0.05)
    with pytest.raises(CosimInputError):
        arrival_times("poisson", 0.0, 10.0, rng)


def test_trace_errors_name_the_line(tmp_path):
    ok = tmp_path / "ok.csv"
    ok.write_text("arrival_time_s,input_len,output_len\n0.0,10,5\n0.5,20,6\n")
    tr = read_trace(ok)
    assert tr.input_len.tolist() == [10, 20]
    missing = tmp_path / "missing.csv"
    missing.write_text("arrival_time_s,input_len\n0,10\n")
    with pytest.raises(CosimInputError, match="line 1: missing column"):
        read_trace(missing)
    unsorted = tmp_path / "unsorted.csv"
    unsorted.write_text("arrival_time_s,input_len,output_len\n1.0,10,5\n0.5,20,6\n")
    with pytest.raises(CosimInputError, match="line 3"):
        read_trace(unsorted)
    zero = tmp_path / "zero.csv"
    zero.write_text("arrival_time_s,input_len,output_len\n0.0,0,5\n")
    with pytest.raises(CosimInputError, match="line 2"):
        read_trace(zero)


def test_request_that_cannot_fit_is_an_input_error():
    with pytest.raises(CosimInputError, match="needs 1100 tokens"):
        simulate(one(1000, 100), TABLE, ServingConfig(kv_capacity_tokens=512))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 1000), sched=st.sampled_from(["continuous", "chunked"]),
       replicas=st.integers(1, 3))
def test_token_conservation_and_causality(n, seed, sched, replicas):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2, n))
    req = RequestSet(t, rng.integers(1, 300, n), rng.integers(1, 50, n))
    run = simulate(req, TABLE, ServingConfig(kv_capacity_tokens=1_000_000, replicas=replicas, scheduler=sched,
                                             max_batched_tokens=128 if sched == "chunked" else 4096))
    # with ample memory nothing is preempted: every prompt token once, every later output token once
    assert run.preemptions.sum() == 0
    assert run.timeline[:, TL_TOKENS].sum() == req.input_len.sum() + (req.output_len - 1).sum()
    assert np.all(run.first_token_s >= req.arrival_s) and np.all(run.finish_s >= run.first_token_s)
    assert np.all(run.timeline[:, TL_END] > run.timeline[:, TL_START])


def test_serve_stack_slows_steps_by_at_most_its_factor(monkeypatch):
    import cosim.engines.calibration as calibration
    from cosim.cli.common import build_scenario
    from cosim.engines.calibration import stack_scale, stack_sequence_busy_s
    from cosim.serving.service import make_requests, serve

    req = make_requests(offline=True, num_requests=64, qps=None, duration_s=None, input_len="512", output_len="64")
    sc = build_scenario(phase="generate", precision="fp8")
    tuned = serve("h100-sxm", "llama-3.1-8b", sc, chips=1, requests=req, timeline=False)
    vllm = serve("h100-sxm", "llama-3.1-8b", sc, chips=1, requests=req, timeline=False, stack="vllm")
    f, busy = stack_scale("vllm"), stack_sequence_busy_s("vllm")
    assert 0.0 < busy < 1e-4
    # each decode step of at most 64 sequences: the tuned one slowed by the kernels' factor, plus the
    # stack's unpriced GPU time per running sequence
    assert tuned["tpot_mean_s"] < vllm["tpot_mean_s"] <= (tuned["tpot_mean_s"] / f + 64 * busy) * 1.02
    # without that time: every step at most 1 / f slower (kernels), never faster; host work and the
    # schedule do not change
    monkeypatch.setattr(calibration, "stack_sequence_busy_s", lambda stack: 0.0)
    kernels = serve("h100-sxm", "llama-3.1-8b", sc, chips=1, requests=req, timeline=False, stack="vllm")
    assert tuned["output_tokens_per_s"] * f * 0.98 <= kernels["output_tokens_per_s"] <= tuned["output_tokens_per_s"] * 1.0001
    assert vllm["output_tokens_per_s"] < kernels["output_tokens_per_s"]


def test_per_sequence_time_is_paid_per_running_sequence_not_per_prompt_token():
    """A prompt of 4,096 tokens is one sequence: the serving tables leave the engine's per-sequence time out of
    their per-token part and the step pays it once per running sequence."""
    from cosim.cli.common import build_scenario
    from cosim.engines.calibration import apply_stack
    from cosim.engines.efficiency import params_for
    from cosim.serving.adapter import engine_table
    from cosim.specs.loader import load_hardware, load_workload

    hw, wl = load_hardware("h100-sxm"), load_workload("llama-3.1-8b")
    sc = build_scenario(phase="generate", precision="fp8")
    base = params_for(hw, calibrated=False)
    t = 50e-6
    plain = engine_table(hw, wl, sc, 8192, 1 << 20, params=base.with_overrides(per_sequence_overhead_s=0.0))
    busy = engine_table(hw, wl, sc, 8192, 1 << 20,
                        params=apply_stack(base.with_overrides(per_sequence_overhead_s=0.0), 1.0, t))
    assert plain.per_sequence_s == 0.0 and busy.per_sequence_s == pytest.approx(t)
    assert busy.prefill_time(4096) - plain.prefill_time(4096) == pytest.approx(t, rel=1e-6)
    assert busy.decode_time(64, 1000) - plain.decode_time(64, 1000) == pytest.approx(64 * t, rel=1e-6)


@pytest.mark.parametrize("sched", ["continuous", "chunked"])
def test_prompt_steps_wait_for_the_host_floor(sched):
    """An engine that launches prompt iterations without CUDA graphs: the lone request's prefill iteration
    (A + B L + D L (L + 1) / 2 = 0.085 s on the GPU) takes the 0.5 s floor; its decode steps do not."""
    from dataclasses import replace

    L, OUT = 300, 40
    floored = replace(TABLE, prompt_step_floor_s=0.5)
    lat = latency_arrays(simulate(one(L, OUT), floored, ServingConfig(kv_capacity_tokens=100_000, scheduler=sched)))
    assert A + B * L + D * L * (L + 1) / 2 < 0.5
    assert lat["ttft"][0] == pytest.approx(0.5, rel=1e-12)
    assert lat["tpot"][0] == pytest.approx(A + B + C * (L + OUT / 2), rel=1e-12)
    assert floored.step_time(L, 0.0, L * (L + 1) / 2) == 0.5 and floored.step_time(1, L) < 0.5
    with pytest.raises(CosimInputError, match="prompt_step_floor_s"):
        replace(TABLE, prompt_step_floor_s=-1.0)


@pytest.mark.parametrize("workload", ["llama-3.1-8b", "gpt-oss-20b"])
def test_a_served_replica_draws_what_an_estimate_of_its_decode_step_draws(workload):
    """The serving simulator's joules come from the estimate's energy model: a replica decoding at the run's
    mean batch and context draws the estimate's avg_power_w per chip (busy MoE expert kernels included), and
    idles at the static power, below it."""
    from cosim.energy.model import EnergyParams
    from cosim.engines.estimate import estimate
    from cosim.serving.service import _replica_power_w
    from cosim.specs.loader import load_hardware, load_workload
    from cosim.specs.scenario import Scenario

    hw, wl = load_hardware("h100-sxm"), load_workload(workload)
    sc = Scenario(phase="decode", batch=1, input_len=1, output_len=1)
    busy, idle = _replica_power_w(hw, wl, sc, 1, {"mean_batch_seqs": 256, "_mean_context": 1200})
    step = estimate(hw, wl, sc.model_copy(update={"batch": 256, "input_len": 1200}), chips=1)
    assert busy == pytest.approx(step.avg_power_w)
    assert idle == pytest.approx(EnergyParams.from_hardware(hw).static_power_w) and idle < busy <= 700.0
