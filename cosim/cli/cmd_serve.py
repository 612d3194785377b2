"""`cosim serve`: simulate serving a language model under load -- throughput, latency percentiles, SLO goodput.

Parsing and formatting only; the model lives in `cosim.serving`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cosim.cli.common import (
    ActivationPrecisionOpt,
    AttentionPrecisionOpt,
    DensePrecisionOpt,
    DpOpt,
    EpOpt,
    Fp4FormatOpt,
    HardwareOpt,
    KvPrecisionOpt,
    KvReadLayersOpt,
    KvReadPerQueryHeadOpt,
    PpOpt,
    PrecisionOpt,
    SsmStatePrecisionOpt,
    TpOpt,
    WorkloadOpt,
    chip_fp4_format,
)

LEN_HELP = ("tokens per request: N, fixed:N, uniform:LO:HI, lognormal:MEAN:SIGMA[:MAX] (MEAN in tokens, SIGMA of "
            "log length), profile:NAME (see cosim/data/dataset_profiles.yaml, e.g. profile:openorca) or "
            "trace:FILE.csv (columns arrival_time_s,input_len,output_len; gives arrivals too)")
SCHEDULERS = ("continuous", "chunked", "disaggregated", "static")

TABLE_ROWS = ("feasible", "reason", "replicas", "chips_per_replica", "scheduler", "step_model", "concurrency",
              "num_requests", "duration_s", "output_tokens_per_s", "input_tokens_per_s", "requests_per_s",
              "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s",
              "e2e_p50_s", "e2e_p90_s", "e2e_p99_s", "queue_delay_p50_s", "queue_delay_p99_s",
              "mean_batch_seqs", "kv_capacity_tokens_per_replica", "kv_utilisation_mean", "kv_utilisation_peak",
              "preemptions", "sustainable", "goodput_requests_per_s", "slo_attainment", "max_qps_at_slo",
              "energy_j_per_output_token", "usd_per_million_output_tokens")


def _positive(flag: str, value: float | None) -> None:
    from cosim.errors import CosimInputError

    if value is not None and not value > 0:
        raise CosimInputError(f"{flag} must be positive, got {value:g}")


def _stagger(text: str) -> float | None:
    """--stagger: None for auto (spread over one request's lifetime), else seconds >= 0."""
    from cosim.errors import CosimInputError

    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise CosimInputError(f"--stagger must be auto or a time >= 0 s, got '{text}'")
    return value


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        hardware: HardwareOpt,
        workload: WorkloadOpt,
        input_len: Annotated[str, typer.Option("--input-len", help=LEN_HELP)],
        output_len: Annotated[str, typer.Option("--output-len", help=LEN_HELP)],
        chips: Annotated[int | None, typer.Option("--chips", help="chips in the fleet; more than one replica "
                                                  "(tp x pp) needs means several replicas")] = None,
        precision: PrecisionOpt = "bf16",
        kv_precision: KvPrecisionOpt = None,
        kv_read_per_query_head: KvReadPerQueryHeadOpt = False,
        kv_read_per_query_head_layers: KvReadLayersOpt = "all",
        ssm_state_precision: SsmStatePrecisionOpt = None,
        activation_precision: ActivationPrecisionOpt = None,
        dense_precision: DensePrecisionOpt = None,
        fp4_format: Fp4FormatOpt = None,
        attention_precision: AttentionPrecisionOpt = None,
        tp: TpOpt = 1,
        pp: PpOpt = 1,
        ep: EpOpt = 1,
        dp: DpOpt = 1,
        offline: Annotated[bool, typer.Option("--offline", help="all requests queued at t = 0 "
                                              "(trtllm-bench / MLPerf Offline)")] = False,
        num_requests: Annotated[int | None, typer.Option("--num-requests", help="requests in --offline mode, or sent in "
                                                         "all with --concurrency (default 10 x N)")] = None,
        concurrency: Annotated[int | None, typer.Option("--concurrency", help="closed loop: N clients, each sends "
                                                        "its next request when its last one completes (zero think "
                                                        "time; genai-perf, vLLM --max-concurrency, trtllm-bench "
                                                        "--concurrency); throughput over the makespan")] = None,
        stagger: Annotated[str, typer.Option("--stagger", help="with --concurrency: seconds over which the N "
                                             "clients start (0: all at t = 0), or auto: spread over one request's "
                                             "lifetime, the steady state a real server's jitter reaches")] = "auto",
        qps: Annotated[float | None, typer.Option("--qps", help="mean arrival rate, requests/s")] = None,
        duration: Annotated[float | None, typer.Option("--duration", help="arrival window, s")] = None,
        arrival: Annotated[str, typer.Option("--arrival", help="poisson | constant | gamma:CV")] = "poisson",
        scheduler: Annotated[str, typer.Option("--scheduler", help=" | ".join(SCHEDULERS))] = "continuous",
        max_seqs: Annotated[int | None, typer.Option("--max-seqs", help="running sequences per replica "
                                                     "(default 256, vLLM)")] = None,
        max_batched_tokens: Annotated[int | None, typer.Option("--max-batched-tokens", help="tokens per "
                                                               "iteration (default 8192)")] = None,
        block_size: Annotated[int | None, typer.Option("--block-size", help="KV block, tokens (default 16)")] = None,
        preemption: Annotated[str, typer.Option("--preemption", help="recompute | swap")] = "recompute",
        router: Annotated[str, typer.Option("--router", help="least_work | round_robin")] = "least_work",
        slo_ttft: Annotated[float | None, typer.Option("--slo-ttft", help="TTFT limit, s (p99)")] = None,
        slo_tpot: Annotated[float | None, typer.Option("--slo-tpot", help="TPOT limit, s (p99)")] = None,
        find_max_qps: Annotated[bool, typer.Option("--find-max-qps", help="bisect for the highest "
                                                   "sustainable QPS meeting the SLO")] = False,
        seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
        mapping: Annotated[str, typer.Option("--mapping", help="manual (--tp/--pp/--ep/--precision) | auto (the "
                                             "mapping with the most tokens/s per chip meeting --slo-ttft/--slo-tpot "
                                             "at the mean request lengths; the simulator then runs it)")] = "manual",
        with_uncertainty: Annotated[bool, typer.Option("--with-uncertainty", help="add P10/P90 of the throughput "
                                                       "from cosim validate's cross-validated errors")] = False,
        stack: Annotated[str, typer.Option("--stack", help="serving software whose kernel efficiency, as fitted "
                                           "on cosim validate's rows, to use: tuned (default) | trtllm-bench (also: "
                                           "its prompt iterations run without CUDA graphs, so an MoE model's wait for "
                                           "the host) | trtllm-pytorch (the same backend and factor under another "
                                           "harness) | vllm (also: its fitted GPU time per running sequence per "
                                           "step; see reports/validation.md)")] = "tuned",
        cuda_graph_sizes: Annotated[str, typer.Option("--cuda-graph-sizes", help="comma-separated batch sizes "
                                                      "with captured CUDA graphs (TensorRT-LLM cuda_graph_config "
                                                      "batch_sizes with enable_padding): an iteration without a "
                                                      "prompt runs padded up to the next one")] = "",
        fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    ) -> None:
        """Simulate serving: replicas, router, scheduler, paged KV cache; TTFT/TPOT/E2E percentiles and goodput.

        Length DIST syntax: N | fixed:N | uniform:LO:HI | lognormal:MEAN:SIGMA[:MAX] | profile:NAME | trace:FILE.csv
        """
        import sys

        from cosim.cli.common import build_scenario
        from cosim.cli.output import check_format, print_json, print_key_values
        from cosim.errors import CosimInputError
        from cosim.serving.metrics import Slo
        from cosim.serving.requests import parse_arrival_spec
        from cosim.serving.service import closed_loop_steady, make_requests, serve

        check_format(fmt, ("table", "json"))
        if scheduler not in SCHEDULERS:
            raise CosimInputError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got '{scheduler}'")
        for flag, v in (("--qps", qps), ("--duration", duration), ("--slo-ttft", slo_ttft),
                        ("--slo-tpot", slo_tpot)):
            _positive(flag, v)
        if concurrency is not None:
            if concurrency < 1:
                raise CosimInputError(f"--concurrency must be a positive integer, got {concurrency}")
            clash = [f for f, on in (("--qps", qps is not None), ("--duration", duration is not None),
                                     ("--offline", offline), ("--find-max-qps", find_max_qps)) if on]
            if clash:
                raise CosimInputError(f"--concurrency runs a closed loop; it cannot be combined with {', '.join(clash)}")
            if scheduler == "disaggregated":
                raise CosimInputError("--concurrency (closed loop) is not simulated with the disaggregated "
                                      "scheduler; use continuous, chunked or static")
        if concurrency is None and stagger.strip().lower() != "auto":
            raise CosimInputError("--stagger spreads the clients of a --concurrency run; give --concurrency N")
        stagger_s = _stagger(stagger) if concurrency is not None else None
        for flag, v in (("--num-requests", num_requests), ("--max-seqs", max_seqs),
                        ("--max-batched-tokens", max_batched_tokens), ("--block-size", block_size),
                        ("--chips", chips)):
            if v is not None and v <= 0:
                raise CosimInputError(f"{flag} must be a positive integer, got {v}")
        is_trace = input_len.startswith("trace:") or output_len.startswith("trace:")
        if offline and (qps is not None or duration is not None):
            raise CosimInputError("--offline takes --num-requests, not --qps/--duration")
        if not offline and not is_trace and concurrency is None and (qps is None or duration is None):
            raise CosimInputError("give --offline --num-requests R, --qps Q --duration S, or --concurrency N")
        if offline and num_requests is None and not is_trace:
            raise CosimInputError("--offline needs --num-requests R")
        kind, cv = parse_arrival_spec(arrival)
        scenario = build_scenario(phase="generate", batch=1, input_len=1, output_len=1, precision=precision,
                                  tp=tp, pp=pp, ep=ep, dp=dp, kv_precision=kv_precision,
                                  activation_precision=activation_precision, dense_precision=dense_precision,
                                  fp4_format=chip_fp4_format(fp4_format, hardware),
                                  ssm_state_precision=ssm_state_precision,
                                  kv_read_per_query_head=kv_read_per_query_head,
                                  kv_read_per_query_head_layers=kv_read_per_query_head_layers,
                                  attention_precision=attention_precision)
        if cuda_graph_sizes:
            from cosim.cli.common import parse_graph_sizes

            scenario = scenario.model_copy(update={"cuda_graph_batch_sizes": parse_graph_sizes(cuda_graph_sizes)})
        requests = make_requests(offline=offline, num_requests=num_requests, qps=qps, duration_s=duration,
                                 input_len=input_len, output_len=output_len, seed=seed, arrival=kind, cv=cv,
                                 concurrency=concurrency)
        slo = Slo(ttft_s=slo_ttft, tpot_s=slo_tpot)
        chosen = None
        if mapping not in ("manual", "auto"):
            raise CosimInputError(f"--mapping must be manual or auto, got '{mapping}'")
        if mapping == "auto":
            scenario, chosen = _auto_mapping(hardware, workload, scenario, requests, slo_ttft, slo_tpot, chips)
        from cosim.cli.common import check_stack

        check_stack(stack)
        loop = f", closed loop of {concurrency} clients" if concurrency else ""
        print(f"simulating {len(requests)} requests ({scheduler} scheduler{loop})...", file=sys.stderr)
        def run(reqs):
            return serve(hardware, workload, scenario, chips=chips, requests=reqs, scheduler=scheduler,
                         max_seqs=max_seqs, max_batched_tokens=max_batched_tokens, block_size=block_size,
                         preemption=preemption, router=router, slo=slo, find_max=find_max_qps, seed=seed,
                         stack=stack)

        if concurrency is None:
            result = run(requests)
        else:
            def requests_for(s: float):
                return make_requests(offline=offline, num_requests=num_requests, qps=qps, duration_s=duration,
                                     input_len=input_len, output_len=output_len, seed=seed, arrival=kind, cv=cv,
                                     concurrency=concurrency, stagger_s=s)

            result = closed_loop_steady(requests_for, run, concurrency, stagger_s)
        if chosen is not None:
            result["mapping"] = chosen
        if with_uncertainty:
            from cosim.engines.calibration import is_moe
            from cosim.specs.loader import load_hardware, load_workload
            from cosim.validate.uncertainty import band

            result["uncertainty"] = {"output_tokens_per_s": band("output_tokens_per_s", result.get("output_tokens_per_s"),
                                                                 load_hardware(hardware).name,
                                                                 is_moe(load_workload(workload)))}
        if fmt == "json":
            print_json(result)
            return
        rows = {k: result.get(k) for k in TABLE_ROWS if k in result and not (k == "concurrency" and result[k] is None)}
        if chosen is not None:
            rows["mapping (auto)"] = ", ".join(f"{k}={v}" for k, v in chosen.items())
        if with_uncertainty:
            b = result["uncertainty"]["output_tokens_per_s"]
            rows["output_tokens_per_s P10..P90"] = (f"{b['p10']:.4g} .. {b['p90']:.4g} ({b['n']} validated rows)"
                                                    if b else "no validated rows of this kind")
        print_key_values(rows, title=f"cosim serve: {workload} on {hardware}")


def _auto_mapping(hardware, workload, scenario, requests, slo_ttft, slo_tpot, chips):
    """Pick tp/pp/ep/precision with cosim.explore.mapping.best_mapping at the requests' mean lengths."""
    import numpy as np

    from cosim.errors import CosimInputError
    from cosim.explore.engine import _apply
    from cosim.explore.mapping import best_mapping, candidate_mappings
    from cosim.specs.loader import load_hardware, load_workload

    hw, wl = load_hardware(hardware), load_workload(workload)
    mean_in = int(max(1, np.mean(requests.input_len)))
    mean_out = int(max(1, np.mean(requests.output_len)))
    probe = scenario.model_copy(update={"phase": "generate", "input_len": mean_in, "output_len": mean_out})
    cand = candidate_mappings(hw, wl, probe)
    if chips:
        cand["tp"] = [t for t in cand["tp"] if t <= chips] or [1]
        cand["pp"] = [p for p in cand["pp"] if p <= chips]
    slo = {k: v for k, v in (("ttft_s", slo_ttft), ("tpot_s", slo_tpot)) if v is not None}
    best = best_mapping(hw, wl, probe, slo or None, candidates=cand)
    if not best["feasible"]:
        raise CosimInputError(f"--mapping auto found no mapping that fits and meets the SLO: {best['reason']}")
    m = {k: v for k, v in best["mapping"].items() if k != "batch"}
    return _apply(scenario, m), m

