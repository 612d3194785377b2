"""`serve`: one call from specs and a scenario to the serving figures `cosim serve` prints.

It splits `chips` into replicas of the mapping (tp x pp x sp chips each; `--chips` beyond one
replica means several), builds each replica's step-time table and KV capacity
(`cosim.serving.adapter`), draws or reads the requests, simulates, summarises, optionally bisects
for the highest load meeting the SLO, and prices the result. Infeasible configurations come back
as `feasible: false` with a reason; bad input raises CosimInputError.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cosim.errors import CosimInputError
from cosim.serving.metrics import CostInputs, Slo, batch_timeline, summarize
from cosim.serving.requests import LengthDist, arrival_times, parse_length_spec, read_trace
from cosim.serving.search import find_max_qps
from cosim.serving.simulator import RequestSet, ServingConfig, check_fits, simulate

DEFAULTS_PATH = Path(__file__).resolve().parent / "serving_defaults.yaml"
CONTRACT_KEYS = ("feasible", "reason", "replicas", "output_tokens_per_s", "input_tokens_per_s", "requests_per_s",
                 "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s",
                 "goodput_requests_per_s", "max_qps_at_slo", "energy_j_per_output_token",
                 "usd_per_million_output_tokens")
TIMELINE_POINTS = 400


@functools.cache
def serving_defaults() -> dict[str, float]:
    """Default knobs (block size, memory utilisation, max seqs/tokens, host link) from the sourced YAML."""
    with open(DEFAULTS_PATH, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    return {k: float(v["value"]) for k, v in doc["defaults"].items()}


def empty_result(reason: str, replicas: int | None = None) -> dict[str, Any]:
    """The JSON contract with every figure null, for an infeasible configuration."""
    res: dict[str, Any] = {k: None for k in CONTRACT_KEYS}
    res.update(feasible=False, reason=reason, replicas=replicas)
    return res


def make_requests(*, offline: bool, num_requests: int | None, qps: float | None, duration_s: float | None,
                  input_len: str | LengthDist, output_len: str | LengthDist, seed: int = 0,
                  arrival: str = "poisson", cv: float = 1.0, concurrency: int | None = None,
                  stagger_s: float = 0.0) -> RequestSet:
    """A seeded request set from the CLI's mode and length specs (a trace supplies both lengths).

    `concurrency` N makes a closed loop (`RequestSet.closed_loop`, clients started `stagger_s` / N apart) of
    `num_requests` requests (default 10 N; a trace's rows in order, its arrival times unused)."""
    rng = np.random.default_rng(seed)
    in_d = parse_length_spec(input_len, "input", "--input-len") if isinstance(input_len, str) else input_len
    out_d = parse_length_spec(output_len, "output", "--output-len") if isinstance(output_len, str) else output_len
    trace_path = in_d if isinstance(in_d, str) else out_d if isinstance(out_d, str) else None
    if trace_path is not None:
        tr = read_trace(trace_path)
        ins = tr.input_len if isinstance(in_d, str) else in_d.sample(len(tr.arrival_s), rng)
        outs = tr.output_len if isinstance(out_d, str) else out_d.sample(len(tr.arrival_s), rng)
        if concurrency:
            return RequestSet.closed_loop(ins, outs, concurrency, stagger_s)
        if offline:
            return RequestSet(np.zeros(len(ins)), ins, outs, offline=True)
        span = float(tr.arrival_s[-1]) if tr.arrival_s[-1] > 0 else None
        rate = len(ins) / span if span else None
        return RequestSet(tr.arrival_s, ins, outs, offered_qps=rate, duration_s=span)
    if concurrency:
        n = 10 * int(concurrency) if num_requests is None else num_requests
        if n <= 0:
            raise CosimInputError(f"--num-requests must be a positive integer, got {n}")
        return RequestSet.closed_loop(in_d.sample(n, rng), out_d.sample(n, rng), concurrency, stagger_s)
    if offline:
        if num_requests is None or num_requests <= 0:
            raise CosimInputError(f"--num-requests must be a positive integer, got {num_requests}")
        t = np.zeros(num_requests)
    else:
        if qps is None or duration_s is None:
            raise CosimInputError("give --offline --num-requests R, or --qps Q --duration S")
        t = arrival_times(arrival, qps, duration_s, rng, cv)
        if len(t) == 0:
            raise CosimInputError(f"--qps {qps} x --duration {duration_s} produces no request; raise either")
    ins = in_d.sample(len(t), rng)
    outs = out_d.sample(len(t), rng)
    return RequestSet(t, ins, outs, offline=offline, offered_qps=None if offline else qps,
                      duration_s=None if offline else duration_s)


def closed_loop_steady(requests_for, serve_requests, concurrency: int, stagger_s: float | None = None) -> dict[str, Any]:
    """A closed loop's result with its clients started `stagger_s` apart in all, or (None) spread over one
    request's lifetime: the mean end-to-end latency of a first run whose clients all start at t = 0.

    Identical requests sent together finish together and stay in lock-step waves in a simulator (every wave's
    prompts queue behind each other), where a real server's jitter spreads the clients within a few requests;
    started spread, the simulated loop is in that steady state from the start. `requests_for(stagger_s)` builds
    the request set, `serve_requests(requests)` runs it."""
    if stagger_s is not None:
        return serve_requests(requests_for(float(stagger_s)))
    res = serve_requests(requests_for(0.0))
    if concurrency > 1 and res.get("feasible", True) and res.get("e2e_mean_s"):
        res = serve_requests(requests_for(float(res["e2e_mean_s"])))
    return res


def _cost_inputs(hw, workload, scenario, chips_per_replica: int, summary: dict[str, Any]) -> CostInputs:
    """Price per replica-hour from the spec's cloud price; power from the engine's energy model if present."""
    price = hw.cost.cloud_price_usd_per_hour.value * chips_per_replica if hw.cost.cloud_price_usd_per_hour else None
    busy_w = idle_w = None
    try:
        busy_w, idle_w = _replica_power_w(hw, workload, scenario, chips_per_replica, summary)
    except (ImportError, AttributeError, KeyError, CosimInputError, ValueError):
        busy_w = idle_w = None
    return CostInputs(busy_power_w_per_replica=busy_w, idle_power_w_per_replica=idle_w,
                      usd_per_hour_per_replica=price)


def _replica_power_w(hw, workload, scenario, chips: int, summary: dict[str, Any]) -> tuple[float, float]:
    """Accelerator power of a replica running a decode step at the run's mean batch and context: the
    estimate's own energy model (`cosim estimate`'s avg_power_w, busy kernels charged as busy), so a served
    run and an estimate of the same step draw the same watts."""
    from cosim.energy.model import EnergyParams
    from cosim.engines.estimate import estimate

    batch = max(1, int(round(summary.get("mean_batch_seqs") or 1)))
    ctx = max(1, int(round(summary.get("_mean_context") or 1)))
    sc = scenario.model_copy(update={"phase": "decode", "batch": batch, "input_len": ctx, "output_len": 1})
    res = estimate(hw, workload, sc, chips=chips)
    if not res.feasible or res.avg_power_w is None:
        raise ValueError(res.reason or "no power for the decode step")
    return res.avg_power_w * chips, EnergyParams.from_hardware(hw).static_power_w * chips


def _downsample_timeline(run) -> dict[str, list]:
    tl = batch_timeline(run)
    n = len(tl["end_s"])
    if n > TIMELINE_POINTS:
        idx = np.linspace(0, n - 1, TIMELINE_POINTS).astype(np.int64)
        tl = {k: v[idx] for k, v in tl.items()}
    return {k: v.tolist() for k, v in tl.items()}


def serve(hardware, workload, scenario, *, chips: int | None, requests: RequestSet,
          scheduler: str = "continuous", max_seqs: int | None = None, max_batched_tokens: int | None = None,
          block_size: int | None = None, preemption: str = "recompute", router: str = "least_work",
          slo: Slo | None = None, find_max: bool = False, seed: int = 0, use_engine: bool = True,
          make_probe_requests=None, timeline: bool = True, stack: str = "tuned", params=None) -> dict[str, Any]:
    """Simulate serving `requests` on `chips` chips of `hardware` running `workload` mapped by `scenario`;
    `stack` picks the fitted kernel efficiency of a serving stack (cosim/data/calibration.yaml `stacks`),
    applied to `params` (default: the calibrated engine parameters of `hardware`)."""
    from cosim.serving.adapter import replica_model
    from cosim.specs.loader import load_hardware, load_workload
    from cosim.specs.scenario import Parallelism
    from cosim.specs.workload import DecoderLM

    hw = load_hardware(hardware)
    wl = load_workload(workload)
    if not isinstance(wl, DecoderLM):
        raise CosimInputError(f"'{wl.name}' is a video model; cosim serve simulates language-model serving")
    if scenario.images_per_request:
        raise CosimInputError("image prompts are not simulated in serving yet (cosim estimate runs them)",
                              field="images_per_request")
    if find_max and requests.concurrency:
        raise CosimInputError("--find-max-qps searches open-loop arrival rates; drop --concurrency")
    if scheduler == "disaggregated" and requests.concurrency:
        raise CosimInputError("--concurrency (closed loop) is not simulated with the disaggregated scheduler; "
                              "use continuous, chunked or static")
    d = serving_defaults()
    max_seqs = int(max_seqs or d["max_seqs"])
    max_batched_tokens = int(max_batched_tokens or d["max_batched_tokens"])
    block_size = int(block_size or d["block_size_tokens"])
    p = scenario.parallelism
    per_replica = p.tp * p.pp * p.sp
    if chips is None:
        chips = per_replica * p.dp
    if chips <= 0:
        raise CosimInputError(f"--chips must be a positive integer, got {chips}")
    replicas = chips // per_replica
    if replicas < 1:
        return empty_result(f"--chips {chips} is fewer than one replica needs (tp x pp x sp = {per_replica})", 0)
    from cosim.engines.eager import EAGER_PROMPT_STACKS

    rep_sc = scenario.model_copy(update={"parallelism": Parallelism(tp=p.tp, pp=p.pp, ep=p.ep, dp=1, sp=p.sp,
                                                                    sp_kind=p.sp_kind),
                                         # its prompt steps run without CUDA graphs (cosim.engines.eager)
                                         "eager_prompt_steps": scenario.eager_prompt_steps
                                         or stack in EAGER_PROMPT_STACKS})
    max_context = int((requests.input_len + requests.output_len).max())
    from cosim.engines.calibration import is_moe, stack_params

    try:
        uniq = np.unique(requests.input_len)
        anchors = uniq if len(uniq) <= 4 else [float(np.mean(requests.input_len))]
        rm = replica_model(hw, wl, rep_sc, max_batched_tokens=max_batched_tokens,
                           max_context=max_context * max_seqs, memory_utilization=d["memory_utilization"],
                           use_engine=use_engine, anchors=anchors, params=stack_params(hw, stack, params, moe=is_moe(wl)),
                           max_seqs=max_seqs)
    except CosimInputError as err:
        return empty_result(str(err), replicas)
    if not rm.feasible:
        return empty_result(rm.reason or "does not fit", replicas)
    if rm.kv_capacity_tokens < block_size:
        return empty_result(f"KV cache holds {rm.kv_capacity_tokens} tokens per replica, less than one block", replicas)
    host_bw = d["host_link_bytes_per_s_per_chip"] * rm.chips
    link = hw.interconnect.scale_up if chips <= _domain(hw) else hw.interconnect.scale_out
    if link is None:
        link = hw.interconnect.scale_out or hw.interconnect.scale_up
    xfer_bw = link.bandwidth_bytes_per_s.value * rm.chips if link else host_bw
    xfer_lat = link.latency_s.value if link and link.latency_s else 0.0
    if scheduler == "disaggregated" and replicas < 2:
        return empty_result("the disaggregated scheduler needs at least 2 replicas (one prefill, one decode); "
                            "raise --chips", replicas)
    cfg = ServingConfig(kv_capacity_tokens=rm.kv_capacity_tokens, replicas=replicas, scheduler=scheduler,
                        router=router, max_seqs=max_seqs, max_batched_tokens=max_batched_tokens,
                        block_size=block_size, preemption=preemption,
                        swap_s_per_token=rm.kv_bytes_per_token / host_bw,
                        kv_transfer_s_per_token=rm.kv_bytes_per_token / xfer_bw, kv_transfer_latency_s=xfer_lat)
    reason = check_fits(requests, cfg)
    if reason:
        return empty_result(reason, replicas)
    run = simulate(requests, rm.table, cfg)
    summary = summarize(run, slo)
    summary["_mean_context"] = float(np.mean(requests.input_len + 0.5 * requests.output_len))
    cost = _cost_inputs(hw, wl, rep_sc, rm.chips, summary)
    summary = {**summarize(run, slo, cost), "_mean_context": summary["_mean_context"]}
    res: dict[str, Any] = {k: None for k in CONTRACT_KEYS}
    res.update({k: summary.get(k) for k in CONTRACT_KEYS if k in summary})
    res.update(feasible=True, reason=None, replicas=replicas)
    if not summary["sustainable"]:
        res["reason"] = summary["unsustainable_reason"]
    if find_max:
        capacity = summary["requests_per_s"]
        if not requests.offline:
            off = RequestSet(np.zeros(len(requests)), requests.input_len, requests.output_len, offline=True)
            capacity = summarize(simulate(off, rm.table, cfg))["requests_per_s"]
        probe = make_probe_requests or (lambda q: _probe_requests(requests, q, seed))
        sr = find_max_qps(probe, rm.table, cfg, capacity, slo, summarize_kw={"cost": cost})
        res["max_qps_at_slo"] = sr.max_qps
        if sr.summary is not None:
            res["energy_j_per_output_token"] = sr.summary["energy_j_per_output_token"]
            res["usd_per_million_output_tokens"] = sr.summary["usd_per_million_output_tokens"]
            res["goodput_at_max_qps_requests_per_s"] = sr.summary["goodput_requests_per_s"]
        res["max_qps_probes"] = [{"qps": q, "passes": ok} for q, ok in sr.probes]
    extras = {k: v for k, v in summary.items() if k not in res and not k.startswith("_")}
    res.update(extras)
    res.update(scheduler=scheduler, router=router, chips=chips, chips_per_replica=rm.chips,
               step_model=rm.step_model, kv_capacity_tokens_per_replica=rm.kv_capacity_tokens,
               kv_bytes_per_token_per_replica=rm.kv_bytes_per_token, block_size_tokens=block_size,
               max_seqs=max_seqs, max_batched_tokens=max_batched_tokens, offline=requests.offline,
               concurrency=requests.concurrency or None, seed=seed)
    if timeline:
        res["batch_timeline"] = _downsample_timeline(run)
    return res


def _domain(hw) -> int:
    link = hw.interconnect.scale_up
    if link is None or link.domain_size is None:
        return int(hw.system.chips_per_node.value)
    return int(link.domain_size.value)


def _probe_requests(template: RequestSet, qps: float, seed: int) -> RequestSet:
    """Poisson arrivals at `qps` carrying the template's lengths (same count, same order)."""
    rng = np.random.default_rng(seed + 1)
    n = len(template)
    gaps = rng.exponential(1.0 / qps, size=n)
    t = np.cumsum(gaps) - gaps[0]
    return RequestSet(t, template.input_len, template.output_len, offline=False, offered_qps=qps,
                      duration_s=float(n / qps))
