"""`cosim estimate`: latency, throughput, MFU/MBU and the bottleneck of one workload on one chip spec."""

from __future__ import annotations

import typer

from cosim.cli.common import (
    BatchOpt,
    DpOpt,
    EpOpt,
    FramesOpt,
    HardwareOpt,
    HeightOpt,
    InputLenOpt,
    OutputLenOpt,
    PhaseOpt,
    PpOpt,
    PrecisionOpt,
    SpOpt,
    StepsOpt,
    TpOpt,
    WidthOpt,
    WorkloadOpt,
)


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        hardware: HardwareOpt,
        workload: WorkloadOpt,
        phase: PhaseOpt = "decode",
        chips: int | None = typer.Option(None, "--chips", help="total chips (a multiple of tp x pp x sp x dp)"),
        batch: BatchOpt = "1",
        input_len: InputLenOpt = 1024,
        output_len: OutputLenOpt = 128,
        frames: FramesOpt = None,
        height: HeightOpt = None,
        width: WidthOpt = None,
        steps: StepsOpt = None,
        precision: PrecisionOpt = "bf16",
        tp: TpOpt = 1,
        pp: PpOpt = 1,
        ep: EpOpt = 1,
        dp: DpOpt = 1,
        sp: SpOpt = 1,
        mode: str = typer.Option("analytical", "--mode", help="analytical | cycle"),
        fmt: str = typer.Option("table", "--format", help="table | json"),
    ) -> None:
        """Estimate latency, throughput, MFU/MBU, memory per chip and the bottleneck."""
        from cosim.cli.common import build_scenario, parse_batch
        from cosim.cli.output import check_format, print_json, print_key_values, print_table
        from cosim.engines.estimate import estimate

        check_format(fmt, ("table", "json"))
        b = parse_batch(batch)
        scenario = build_scenario(phase=phase, batch=b or dp, input_len=input_len, output_len=output_len,
                                  frames=frames, height=height, width=width, steps=steps, precision=precision,
                                  tp=tp, pp=pp, ep=ep, dp=dp, sp=sp)
        result = estimate(hardware, workload, scenario, chips=chips, mode=mode, batch_max=b is None)
        if fmt == "json":
            print_json(result.to_dict())
            return
        print_key_values(result.to_dict(), title=f"cosim estimate: {phase} ({mode})")
        if len(result.breakdown):
            frame = result.breakdown.sort_values("time_s", ascending=False)
            cols = ["graph", "name", "kind", "bound", "repeat", "time_s", "share", "achieved_flops_per_s",
                    "achieved_bytes_per_s"]
            print_table(frame[cols], title="per-op breakdown (per chip per step, time x repeat)")
