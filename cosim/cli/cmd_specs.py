"""`cosim specs list|show|check`: browse and validate the catalog and user spec files."""

from __future__ import annotations

from pathlib import Path

import typer

from cosim.cli.output import check_format, print_csv, print_json, print_key_values, print_table

FORMAT_HELP = "table | json | csv"


def register(app: typer.Typer) -> None:
    specs = typer.Typer(help="Browse and validate hardware and workload specs.", no_args_is_help=True)
    app.add_typer(specs, name="specs")

    @specs.command("list")
    def list_cmd(fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
        """List every hardware and workload slug in the built-in catalog."""
        import pandas as pd

        from cosim.api import catalog_summary

        check_format(fmt)
        summary = catalog_summary()
        if fmt == "json":
            print_json(summary)
            return
        rows = [{"type": "hardware", **h} for h in summary["hardware"]]
        rows += [{"type": "workload", **w} for w in summary["workloads"]]
        frame = pd.DataFrame(rows)
        print_csv(frame) if fmt == "csv" else print_table(frame, title="cosim catalog")

    @specs.command("show")
    def show_cmd(
        name: str = typer.Argument(..., help="catalog slug or path to a YAML/JSON spec"),
        fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    ) -> None:
        """Show one spec with SI values (workloads include params_total and params_active)."""
        import pandas as pd

        from cosim.api import describe_spec

        check_format(fmt)
        info = describe_spec(name)
        if fmt == "json":
            print_json(info)
        elif fmt == "csv":
            print_csv(pd.DataFrame(info.get("figures", [])) if "figures" in info else pd.DataFrame([info]))
        else:
            print_key_values(info, title=info.get("name"))
            if info.get("figures"):
                print_table(pd.DataFrame(info["figures"]), title="figures (SI units) and sources")

    @specs.command("check")
    def check_cmd(
        paths: list[Path] = typer.Argument(..., help="spec files to validate"),
        fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    ) -> None:
        """Validate spec files; exits 2 if any is invalid, printing one line per bad file."""
        import sys

        from cosim.errors import CosimInputError
        from cosim.specs.loader import load_any

        check_format(fmt)
        results = []
        for path in paths:
            try:
                spec = load_any(path)
                results.append({"path": str(path), "ok": True, "name": spec.name, "error": None})
            except CosimInputError as err:
                results.append({"path": str(path), "ok": False, "name": None, "error": str(err)})
        bad = [r for r in results if not r["ok"]]
        if fmt == "json":
            print_json({"ok": not bad, "files": results})
        elif fmt == "csv":
            print_csv(pd_frame(results))
        else:
            for r in results:
                print(f"ok    {r['path']} ({r['name']})" if r["ok"] else f"FAIL  {r['error']}")
        if bad:
            for r in bad:
                print(f"error: {r['error']}", file=sys.stderr)
            raise typer.Exit(2)


def pd_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows)
