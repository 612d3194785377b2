"""`cosim sweep SPEC.yaml --output OUT.parquet`: evaluate a design-space sweep, locally or on Dask.

Points are generated and evaluated chunk by chunk and streamed to Parquet; a killed sweep resumes
where it stopped when run again with the same spec (`--fresh` starts over). To use an existing Dask
cluster, start a scheduler (`dask scheduler`) and workers (`dask worker tcp://HOST:8786 --nthreads 1`)
in environments where cosim is installed, then pass `--scheduler tcp://HOST:8786`; `--local-cluster N`
starts N worker processes on this machine instead. Results are identical to a local run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cosim.cli.common import Fmt

SWEEP_HELP = __doc__.split("\n\n", 1)[1].replace("\n", " ")


def register(app: typer.Typer) -> None:
    @app.command("sweep", help="Evaluate a design-space sweep (SPEC.yaml) into a Parquet file. " + SWEEP_HELP)
    def sweep_cmd(
        spec: Path = typer.Argument(..., help="sweep spec YAML (see examples/sweeps/)"),
        output: Path = typer.Option(..., "--output", "-o", help="results Parquet file"),
        scheduler: str | None = typer.Option(None, "--scheduler",
                                             help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786"),
        local_cluster: int | None = typer.Option(None, "--local-cluster", help="start N local Dask worker processes"),
        fresh: bool = typer.Option(False, "--fresh", help="discard a previous partial run instead of resuming"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
        fmt: Fmt = "table",
    ) -> None:
        import sys

        from cosim.cli.output import check_format, print_csv, print_json, print_key_values
        from cosim.errors import CosimInputError
        from cosim.explore.spec import load_sweep_spec
        from cosim.explore.sweep import run_sweep

        check_format(fmt)
        if scheduler and local_cluster:
            raise CosimInputError("use either --scheduler or --local-cluster, not both")
        if local_cluster is not None and local_cluster <= 0:
            raise CosimInputError(f"--local-cluster must be a positive integer, got {local_cluster}")
        sweep = load_sweep_spec(spec)
        summary = run_sweep(sweep, output, base_dir=spec.parent, fresh=fresh, quiet=quiet,
                            scheduler=scheduler, local_cluster=local_cluster)
        data = summary.as_dict()
        data["best"] = dict(summary.best)
        if fmt == "json":
            print_json(data)
        elif fmt == "csv":
            import pandas as pd

            flat = {k: v for k, v in data.items() if k != "best"}
            flat.update({f"best_{k}": v for k, v in summary.best.items()})
            print_csv(pd.DataFrame([flat]))
        else:
            flat = {k: v for k, v in data.items() if k != "best"}
            flat.update({f"best {k}": v for k, v in summary.best.items()})
            print_key_values(flat, title=f"sweep {sweep.name}")
        if summary.feasible_points == 0:
            print(f"warning: {summary.message}", file=sys.stderr)
