"""`cosim cost`: what a chip-hour, a million tokens, a request, a video or a fleet costs, and how sure.

Inputs: `--hardware` (spec slug or YAML), a finance YAML (`--inputs`, see
examples/cost/finance_inputs.yaml; defaults and sources in cosim/data/cost_defaults.yaml),
`--set key=value` overrides, and the work one chip does: `--tokens-per-s-per-chip` (output tokens),
optionally `--input-tokens-per-s-per-chip`, `--input-len`/`--output-len` (per request),
`--chip-seconds-per-video`/`--video-seconds`, `--training-chip-hours`; or `--workload` with scenario
flags to take the throughput from the analytical engine (`cosim.engines.estimate`, when installed).

JSON keys (`--format json`; money in USD, rates per chip-hour; null where not applicable):
  hardware, mode                      the spec slug; cloud | owned | both
  inputs.<name>.{base,low,high,source[,date]}
                                      every finance input as used (spec values filled in)
  sources                             source key -> citation for the defaults
  capacity.{output_tokens_per_s_per_chip, input_tokens_per_s_per_chip, input_len, output_len,
            chip_seconds_per_video, video_seconds, training_chip_hours, source}
  cloud.{usd_per_chip_hour, usd_per_chip_hour_effective (/ utilisation), usd_per_token,
         usd_per_million_output_tokens, usd_per_million_input_tokens, usd_per_request,
         usd_per_video, usd_per_video_second, usd_per_training_run}
  owned.{breakdown_usd_per_chip_hour.{capex_accelerator, capex_server, capex_network, financing,
         energy, hosting, operations}, usd_per_chip_hour, ... the same unit costs as cloud}
  fleet.{busy_chips, chips, nodes, target_tokens_per_day, target_requests_per_s,
         monthly_cost_usd.{cloud, owned}}       null without a target
  break_even_utilization              owned $/chip-hour / cloud $/chip-hour: the utilisation above
                                      which owning beats renting on demand (> 1: never)
  monte_carlo.{samples, seed, metric, uncertain_inputs, <mode>.{p10, p50, p90, mean}}
  tornado[].{mode, input, low, base, high, metric, metric_at_base, metric_at_low, metric_at_high, swing}
`--format csv` prints the same numbers long-form: section, mode, item, value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosim.cli.common import Fmt, HardwareOpt, PrecisionOpt

_F = Annotated[float | None, typer.Option()]


def register(app: typer.Typer) -> None:
    @app.command("cost")
    def cost_cmd(
        hardware: HardwareOpt,
        inputs: Annotated[Path | None, typer.Option("--inputs", help="finance YAML (prices, PUE, $/kWh, ...)")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="override one finance input: key=value")] = None,
        mode: Annotated[str, typer.Option("--mode", help="cloud | owned | both")] = "both",
        tokens_per_s_per_chip: Annotated[float | None, typer.Option(
            "--tokens-per-s-per-chip", help="output tokens/s one chip sustains")] = None,
        input_tokens_per_s_per_chip: Annotated[float | None, typer.Option(
            "--input-tokens-per-s-per-chip", help="prompt (prefill) tokens/s one chip sustains")] = None,
        input_len: Annotated[int | None, typer.Option("--input-len", help="prompt tokens per request")] = None,
        output_len: Annotated[int | None, typer.Option("--output-len", help="output tokens per request")] = None,
        chip_seconds_per_video: Annotated[float | None, typer.Option(
            "--chip-seconds-per-video", help="chip-seconds to generate one video")] = None,
        video_seconds: Annotated[float | None, typer.Option("--video-seconds", help="length of one video")] = None,
        training_chip_hours: Annotated[float | None, typer.Option(
            "--training-chip-hours", help="chip-hours of one training run")] = None,
        workload: Annotated[str | None, typer.Option("--workload", help="take throughput from the engine")] = None,
        phase: Annotated[str, typer.Option("--phase", help="scenario phase for --workload")] = "decode",
        precision: PrecisionOpt = "bf16",
        batch: Annotated[int, typer.Option("--batch", help="batch size for --workload")] = 1,
        tp: Annotated[int, typer.Option("--tp", help="tensor-parallel degree for --workload")] = 1,
        slo_ttft: Annotated[float | None, typer.Option(
            "--slo-ttft", help="with --workload: size on the serving simulator's highest load meeting this p99 "
                               "TTFT (s)")] = None,
        slo_tpot: Annotated[float | None, typer.Option(
            "--slo-tpot", help="with --workload: ... and this p99 TPOT (s)")] = None,
        target_tokens_per_day: Annotated[float | None, typer.Option(
            "--target-tokens-per-day", help="fleet target: output tokens per day")] = None,
        target_rps: Annotated[float | None, typer.Option("--target-rps", help="fleet target: requests/s")] = None,
        monte_carlo: Annotated[int, typer.Option("--monte-carlo", help="Monte Carlo samples (0: off)")] = 0,
        seed: Annotated[int, typer.Option("--seed", help="Monte Carlo seed")] = 0,
        tornado: Annotated[bool, typer.Option("--tornado", help="rank inputs by their low/high swing")] = False,
        fmt: Fmt = "table",
    ) -> None:
        """TCO breakdown, $/M tokens, fleet size, break-even, P10/P50/P90 and tornado for one chip."""
        from cosim.cli.output import check_format, print_json
        from cosim.cost.finance import load_finance, parse_set_options
        from cosim.cost.report import cost_report
        from cosim.cost.tco import Capacity, ChipFacts
        from cosim.errors import CosimInputError
        from cosim.specs.loader import load_hardware

        check_format(fmt)
        if target_tokens_per_day is not None and target_rps is not None:
            raise CosimInputError("give one of --target-tokens-per-day and --target-rps", field="--target-rps")
        hw = load_hardware(hardware)
        fin = load_finance(inputs, parse_set_options(set_))
        modelled_power = None
        source = "user"
        if (slo_ttft is not None or slo_tpot is not None) and workload is None:
            raise CosimInputError("--slo-ttft/--slo-tpot size the fleet with the serving simulator and need "
                                  "--workload", field="--workload")
        if workload is not None and tokens_per_s_per_chip is None and (slo_ttft or slo_tpot):
            tokens_per_s_per_chip = _serving_capacity(
                hw, workload, precision=precision, tp=tp, input_len=input_len or 1024,
                output_len=output_len or 128, slo_ttft=slo_ttft, slo_tpot=slo_tpot, seed=seed)
            source = (f"cosim serve: highest Poisson load meeting p99 TTFT <= {slo_ttft} s, TPOT <= {slo_tpot} s "
                      f"({workload}, {precision}, tp {tp})")
        elif workload is not None and tokens_per_s_per_chip is None:
            tokens_per_s_per_chip, modelled_power = _engine_capacity(
                hw, workload, phase=phase, precision=precision, batch=batch, tp=tp,
                input_len=input_len or 1024, output_len=output_len or 128)
            source = f"cosim.engines.estimate ({workload}, {phase}, batch {batch}, {precision}, tp {tp})"
        cap = Capacity(output_tokens_per_s_per_chip=tokens_per_s_per_chip,
                       input_tokens_per_s_per_chip=input_tokens_per_s_per_chip,
                       input_len=input_len, output_len=output_len, chip_seconds_per_video=chip_seconds_per_video,
                       video_seconds=video_seconds, training_chip_hours=training_chip_hours)
        report = cost_report(ChipFacts.from_hardware(hw), fin, cap, mode=mode,
                             target_tokens_per_day=target_tokens_per_day, target_requests_per_s=target_rps,
                             monte_carlo_samples=monte_carlo, seed=seed, with_tornado=tornado,
                             modelled_system_power_w=modelled_power, capacity_source=source)
        if tornado and not report["tornado"]:
            import sys

            print("note: no finance input is a range, so the tornado table is empty", file=sys.stderr)
        if fmt == "json":
            print_json(report)
        elif fmt == "csv":
            from cosim.cli.output import print_csv

            print_csv(_long_frame(report))
        else:
            _print_tables(report)


def _engine_capacity(hw, workload: str, **scenario) -> tuple[float, float]:
    """(output tokens/s per chip, modelled system W per chip) from the engine (TDP derate already applied)."""
    from cosim.cli.common import build_scenario
    from cosim.engines.estimate import estimate
    from cosim.errors import CosimInputError
    from cosim.specs.loader import load_workload

    wl = load_workload(workload)
    result = estimate(hw, wl, build_scenario(**scenario))
    if not result.feasible:
        raise CosimInputError(f"infeasible: {result.reason}", field="--workload")
    chips = float(result.chips or 1)
    tps = float(result.throughput_tokens_per_s) / chips
    system_w = (result.system_energy_j_per_token or 0.0) * tps
    return tps, system_w


def _serving_capacity(hw, workload: str, *, precision: str, tp: int, input_len: int, output_len: int,
                      slo_ttft: float | None, slo_tpot: float | None, seed: int) -> float:
    """Output tokens/s per chip at the highest Poisson load one replica sustains within the SLO."""
    from cosim.cli.common import build_scenario
    from cosim.errors import CosimInputError
    from cosim.serving.metrics import Slo
    from cosim.serving.service import make_requests, serve

    for flag, value in (("--slo-ttft", slo_ttft), ("--slo-tpot", slo_tpot)):
        if value is not None and value <= 0:
            raise CosimInputError(f"{flag} must be > 0 s, got {value}", field=flag)
    sc = build_scenario(phase="generate", batch=1, input_len=1, output_len=1, precision=precision, tp=tp)
    requests = make_requests(offline=False, num_requests=None, qps=1.0, duration_s=120.0, input_len=str(input_len),
                             output_len=str(output_len), seed=seed)
    res = serve(hw, workload, sc, chips=tp, requests=requests, slo=Slo(ttft_s=slo_ttft, tpot_s=slo_tpot),
                find_max=True, seed=seed, timeline=False)
    if not res.get("feasible") or not res.get("max_qps_at_slo"):
        raise CosimInputError(f"no load meets the SLO on one replica: {res.get('reason') or 'max QPS is 0'}",
                              field="--slo-ttft")
    return float(res["max_qps_at_slo"]) * output_len / float(res.get("chips_per_replica") or tp)


UNIT_KEYS = ("usd_per_chip_hour", "usd_per_chip_hour_effective", "usd_per_million_output_tokens",
             "usd_per_million_input_tokens", "usd_per_request", "usd_per_video", "usd_per_video_second",
             "usd_per_training_run")


def _long_frame(report: dict):
    from cosim.cost.report import report_long_table

    return report_long_table(report)


def _print_tables(report: dict) -> None:
    import pandas as pd

    from cosim.cli.output import print_table

    modes = [m for m in ("cloud", "owned") if report.get(m)]
    rows = []
    for k in UNIT_KEYS:
        vals = {m: report[m].get(k) for m in modes}
        if any(v is not None for v in vals.values()):
            rows.append({"metric": k, **{m: (float("nan") if v is None else v) for m, v in vals.items()}})
    print_table(pd.DataFrame(rows), title=f"cost on {report['hardware']} (USD)")
    if report.get("owned"):
        br = report["owned"]["breakdown_usd_per_chip_hour"]
        total = report["owned"]["usd_per_chip_hour"] or 1.0
        frame = pd.DataFrame([{"line": k, "usd_per_chip_hour": v, "share": v / total} for k, v in br.items()])
        print_table(frame, title="owned TCO per chip-hour at full use")
    inputs = pd.DataFrame([{"input": k, "base": v["base"], "low": v["low"], "high": v["high"],
                            "source": v.get("source") or ""} for k, v in report["inputs"].items()])
    print_table(inputs, title="finance inputs")
    if report.get("fleet"):
        fl = report["fleet"]
        frame = pd.DataFrame([{"chips": fl["chips"], "nodes": fl["nodes"], "busy_chips": fl["busy_chips"],
                               **{f"monthly_usd_{m}": v for m, v in fl["monthly_cost_usd"].items()}}])
        print_table(frame, title="fleet for the target load")
    if report.get("break_even_utilization") is not None:
        print_table(pd.DataFrame([{"break_even_utilization": report["break_even_utilization"]}]),
                    title="owning beats renting on demand above this utilisation")
    mc = report.get("monte_carlo")
    if mc:
        frame = pd.DataFrame([{"mode": m, **mc[m]} for m in modes if m in mc])
        print_table(frame, title=f"Monte Carlo ({mc['samples']} samples, seed {mc['seed']}): {mc['metric']}")
    if report.get("tornado"):
        frame = pd.DataFrame(report["tornado"])[["mode", "input", "low", "high", "metric_at_low",
                                                 "metric_at_high", "swing"]]
        print_table(frame, title=f"tornado: {report['tornado'][0]['metric']}")
