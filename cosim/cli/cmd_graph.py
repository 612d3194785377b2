"""`cosim graph`: print a workload's operator table under a scenario (per chip, per step) with totals.

JSON: {"ops": [{name, kind, stage, m, k, n, groups, batch, heads, kv_heads, q_len, kv_len, head_dim,
head_dim_v, window, causal, fused, precision, flops, bytes_weight, bytes_act_in, bytes_act_out,
bytes_kv_read, bytes_kv_write, comm_kind, comm_group, comm_bytes, repeat}, ...],
"totals": {flops, bytes_weight, bytes_act, bytes_kv_read, bytes_kv_write, bytes_total, comm_bytes, ops}}.
Totals are sum(column x repeat): per chip per step.
"""

from __future__ import annotations

import typer

from cosim.cli.common import (
    BatchOpt,
    DpOpt,
    EpOpt,
    Fmt,
    FramesOpt,
    HeightOpt,
    InputLenOpt,
    OutputLenOpt,
    PhaseOpt,
    PpOpt,
    PrecisionOpt,
    SpKindOpt,
    SpOpt,
    SpRingOpt,
    StepsOpt,
    TpOpt,
    WidthOpt,
    WorkloadOpt,
)


def _g(x: float) -> str:
    return f"{x:.4g}"


def table_frame(frame):
    """A compact view for people: one shape column, bytes by class, the collective and its group."""
    import pandas as pd

    shapes, comms = [], []
    for r in frame.itertuples(index=False):
        if r.kind == "attention" and not r.q_len:  # a Mamba-2 scan: per-sequence states of heads x P x N
            shapes.append(f"b{_g(r.batch)} h{_g(r.heads)} state {_g(r.head_dim_v)}x{_g(r.head_dim)} (scan)")
        elif r.kind == "attention":
            shapes.append(f"b{_g(r.batch)} h{_g(r.heads)}/{_g(r.kv_heads)} q{_g(r.q_len)} kv{_g(r.kv_len)} "
                          f"d{_g(r.head_dim)}" + (f" w{_g(r.window)}" if r.window else "")
                          + (" causal" if r.causal else ""))
        elif r.kind in ("gemm", "grouped_gemm"):
            shapes.append((f"{_g(r.groups)} x " if r.kind == "grouped_gemm" else "")
                          + f"{_g(r.m)} x {_g(r.k)} x {_g(r.n)}")
        elif r.kind in ("elementwise", "embedding"):
            shapes.append(f"{_g(r.m)} elems" + (" (fused)" if r.fused else ""))
        else:
            shapes.append("")
        comms.append(f"{r.comm_kind}/{r.comm_group}: {_g(r.comm_bytes)}" if r.kind == "comm" else "")
    return pd.DataFrame({
        "name": frame["name"], "kind": frame["kind"], "stage": frame["stage"], "shape": shapes,
        "flops": frame["flops"], "bytes_weight": frame["bytes_weight"],
        "bytes_act": frame["bytes_act_in"] + frame["bytes_act_out"],
        "bytes_kv": frame["bytes_kv_read"] + frame["bytes_kv_write"], "comm": comms, "repeat": frame["repeat"],
    })


def graph_totals(table) -> dict:
    """Per chip per step: FLOPs, bytes by class and communication bytes."""
    act = table.total("bytes_act_in") + table.total("bytes_act_out")
    out = {
        "flops": table.total("flops"),
        "bytes_weight": table.total("bytes_weight"),
        "bytes_act": act,
        "bytes_kv_read": table.total("bytes_kv_read"),
        "bytes_kv_write": table.total("bytes_kv_write"),
        "comm_bytes": table.total("comm_bytes"),
        "ops": len(table),
    }
    out["bytes_total"] = out["bytes_weight"] + act + out["bytes_kv_read"] + out["bytes_kv_write"]
    return out


def register(app: typer.Typer) -> None:
    @app.command("graph")
    def graph_cmd(
        workload: WorkloadOpt,
        phase: PhaseOpt,
        batch: BatchOpt = "1",
        input_len: InputLenOpt = 1024,
        output_len: OutputLenOpt = 128,
        context: int | None = typer.Option(None, "--context", help="decode context (default: --input-len)"),
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
        sp_kind: SpKindOpt = "ulysses",
        sp_ring: SpRingOpt = None,
        fmt: Fmt = "table",
    ) -> None:
        """Print the operator table (per chip after sharding, per step) and its totals."""
        from cosim.cli.common import build_scenario, parse_batch
        from cosim.cli.output import check_format, print_csv, print_json, print_key_values, print_table
        from cosim.errors import CosimInputError
        from cosim.graph.build import build_graph
        from cosim.specs.loader import load_workload

        check_format(fmt)
        b = parse_batch(batch)
        if b is None:
            raise CosimInputError("--batch max needs a hardware spec; use `cosim estimate`")
        if context is not None and context < 0:
            raise CosimInputError(f"--context must be >= 0, got {context}")
        wl = load_workload(workload)
        scenario = build_scenario(phase=phase, batch=b, input_len=input_len, output_len=output_len, frames=frames,
                                  height=height, width=width, steps=steps, precision=precision, tp=tp, pp=pp,
                                  ep=ep, dp=dp, sp=sp, sp_kind=sp_kind, sp_ring=sp_ring)
        table = build_graph(wl, scenario, context)
        frame = table.to_frame()
        totals = graph_totals(table)
        if fmt == "json":
            print_json({"ops": frame.to_dict(orient="records"), "totals": totals})
        elif fmt == "csv":
            print_csv(frame)
        else:
            print_table(table_frame(frame), title=f"{wl.name} {phase} (per chip, per step)")
            print_key_values(totals, title="totals per chip per step")
