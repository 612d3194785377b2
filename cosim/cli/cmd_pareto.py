"""`cosim pareto RESULTS.parquet --objective COL:max --objective COL:min`: the exact Pareto front of a sweep.

Rows that the engine found infeasible or that miss the sweep's constraints are left out unless
`--include-infeasible`. `--output OUT` writes the front's full rows (.parquet, .csv or .json by suffix).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cosim.cli.common import Fmt


def register(app: typer.Typer) -> None:
    @app.command("pareto")
    def pareto_cmd(
        results: Path = typer.Argument(..., help="Parquet file written by `cosim sweep`"),
        objective: list[str] = typer.Option(..., "--objective",
                                            help="COLUMN:max or COLUMN:min (give two or more)"),
        output: Path | None = typer.Option(None, "--output", "-o", help="write the front (.parquet/.csv/.json)"),
        include_infeasible: bool = typer.Option(False, "--include-infeasible",
                                                help="also consider rows that miss constraints"),
        all_columns: bool = typer.Option(False, "--all-columns", help="print every column, not a summary"),
        fmt: Fmt = "table",
    ) -> None:
        """Print the non-dominated rows of a sweep over two or more objectives."""
        import json

        from cosim.cli.output import check_format, print_csv, print_json, print_table
        from cosim.errors import CosimInputError
        from cosim.explore.pareto import pareto_front_table

        check_format(fmt)
        if len(objective) < 2:
            raise CosimInputError("give at least two --objective options (e.g. --objective tpot_s:min)")
        front = pareto_front_table(results, objective, include_infeasible=include_infeasible)
        if output is not None:
            suffix = output.suffix.lower()
            if suffix == ".parquet":
                front.to_parquet(output, index=False)
            elif suffix == ".csv":
                front.to_csv(output, index=False)
            elif suffix == ".json":
                output.write_text(front.to_json(orient="records", indent=2), encoding="utf-8")
            else:
                raise CosimInputError("--output must end in .parquet, .csv or .json", field="--output")
        shown = front
        if not all_columns:
            import pyarrow.parquet as pq

            meta = pq.read_schema(results).metadata or {}
            spec = json.loads(meta.get(b"cosim.spec", b"{}"))
            params = [p["path"] for p in spec.get("parameters", [])]
            objs = [o.rpartition(":")[0] for o in objective]
            keep = ["point_id", "workload", "scenario", *params, *objs, "tp", "pp", "ep", "batch", "precision"]
            shown = front[[c for c in dict.fromkeys(keep) if c in front.columns]]
        if fmt == "json":
            print_json({"objectives": list(objective), "count": len(front), "rows": shown.to_dict(orient="records")})
        elif fmt == "csv":
            print_csv(shown)
        else:
            print_table(shown, title=f"Pareto front: {len(front)} rows")
