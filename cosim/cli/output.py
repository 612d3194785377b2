"""Formatting of command results: tables for people, JSON/CSV for scripts. Data goes to stdout."""

from __future__ import annotations

import json
import math
import sys
from enum import Enum, StrEnum
from typing import Any

import numpy as np

from cosim.errors import CosimInputError


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, NaN and inf into JSON-safe Python values (NaN/inf -> null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, Enum):
        return value.value
    return value


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def print_csv(frame) -> None:
    frame.to_csv(sys.stdout, index=False)


def print_table(frame, title: str | None = None, float_format: str = "{:.4g}") -> None:
    """Render a DataFrame as a rich table (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float | np.floating):
                cells.append("" if v != v else float_format.format(v))
            else:
                cells.append(str(v))
        table.add_row(*cells)
    Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None).print(table)


def print_key_values(data: dict[str, Any], title: str | None = None) -> None:
    import pandas as pd

    rows = [{"field": k, "value": _fmt(v)} for k, v in data.items() if not isinstance(v, dict | list)]
    print_table(pd.DataFrame(rows), title=title)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | np.floating):
        return f"{v:.6g}"
    return str(v)


def check_format(fmt: str, allowed: tuple[str, ...] = ("table", "json", "csv")) -> str:
    if fmt not in allowed:
        raise CosimInputError(f"unknown --format '{fmt}'; expected one of {', '.join(allowed)}")
    return fmt
