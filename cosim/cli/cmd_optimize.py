"""`cosim optimize SPEC.yaml`: constrained design search with differential evolution (seeded, reproducible)."""

from __future__ import annotations

from pathlib import Path

import typer

from cosim.cli.common import Fmt


def register(app: typer.Typer) -> None:
    @app.command("optimize")
    def optimize_cmd(
        spec: Path = typer.Argument(..., help="sweep spec YAML: parameters are the search box, objective 1 is optimised"),
        maxiter: int = typer.Option(100, "--maxiter", help="differential-evolution generations"),
        popsize: int = typer.Option(15, "--popsize", help="population size multiplier (x parameters)"),
        seed: int | None = typer.Option(None, "--seed", help="random seed (default: the spec's sampling.seed)"),
        fmt: Fmt = "table",
    ) -> None:
        """Find the design in the spec's parameter box that best meets objective 1 under its constraints."""
        import sys

        from cosim.cli.output import check_format, print_csv, print_json, print_key_values
        from cosim.errors import CosimInputError
        from cosim.explore.optimize import run_optimize
        from cosim.explore.spec import load_sweep_spec

        check_format(fmt)
        if maxiter <= 0 or popsize <= 0:
            raise CosimInputError("--maxiter and --popsize must be positive integers")
        sweep = load_sweep_spec(spec)
        result = run_optimize(sweep, base_dir=spec.parent, maxiter=maxiter, popsize=popsize, seed=seed)
        if fmt == "json":
            print_json(result)
        else:
            flat = {"feasible": result["feasible"], "objective": result["objective"]["column"],
                    "sense": result["objective"]["sense"], "value": result["objective"]["value"],
                    **{f"param {k}": v for k, v in result["parameters"].items()},
                    "evaluations": result["evaluations"], "generations": result["generations"],
                    "seed": result["seed"]}
            if fmt == "csv":
                import pandas as pd

                print_csv(pd.DataFrame([flat]))
            else:
                print_key_values(flat, title=f"optimize {sweep.name}")
        if not result["feasible"]:
            print(f"warning: {result.get('reason')}", file=sys.stderr)
