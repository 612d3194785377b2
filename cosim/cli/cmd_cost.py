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
        if workload is not None and tokens_per_s_per_chip is None:
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
    """(output tokens/s per chip after the TDP derate, modelled system W per chip) from the engine."""
    from cosim.cli.common import build_scenario
    from cosim.energy.model import EnergyParams, step_energy
    from cosim.errors import CosimInputError
    from cosim.specs.loader import load_workload

    try:
        from cosim.engines.estimate import estimate
    except ImportError:
        raise CosimInputError("the analytical engine (cosim.engines.estimate) is not available; "
                              "pass --tokens-per-s-per-chip", field="--workload") from None
    wl = load_workload(workload)
    sc = build_scenario(**scenario)
    result = estimate(hw, wl, sc)
    if getattr(result, "feasible", True) is False:
        raise CosimInputError(f"infeasible: {getattr(result, 'reason', 'no reason given')}", field="--workload")
    chips = float(getattr(result, "chips", 1) or 1)
    tps = float(result.throughput_tokens_per_s) / chips
    br = step_energy(EnergyParams.from_hardware(hw), flops_by_precision=dict(result.flops_by_precision),
                     bytes_main_memory=result.bytes_main_memory, bytes_onchip=result.bytes_onchip or 0.0,
                     comm_bytes_scale_up=result.comm_bytes_scale_up or 0.0,
                     comm_bytes_scale_out=result.comm_bytes_scale_out or 0.0, time_s=result.step_time_s)
    return tps / br.derate, br.system_j / br.time_s_capped


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
