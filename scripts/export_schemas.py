"""Export the JSON Schemas of cosim's spec files into `schemas/` so editors can complete and check YAML.

Run `python scripts/export_schemas.py` after changing `cosim/specs/hardware.py` or `workload.py`;
`tests/test_hardware_catalog.py` fails while the committed files differ from a fresh export.

The schemas come from `Hardware.model_json_schema()` and `TypeAdapter(Workload).json_schema()`, with
one adjustment: a sourced figure's `value` is parsed from a string with units on load ("3.35 TB/s"),
which pydantic cannot see through its before-validator, so the exported schema accepts a number or a
string there instead of a number only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO / "schemas"

_QUANTITY = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "description": "a number with units, e.g. '3.35 TB/s', '80 GB', '700 W'"},
    ],
    "title": "Value",
    "description": "SI number, or a quantity with units converted to SI on load",
}


def _accept_units(schema: dict[str, Any]) -> dict[str, Any]:
    """Let every sourced figure's `value` be written as a string with units."""
    for name, definition in schema.get("$defs", {}).items():
        if name.startswith("Figure_") and "value" in definition.get("properties", {}):
            definition["properties"]["value"] = dict(_QUANTITY)
    return schema


def build_schemas() -> dict[str, str]:
    """File name -> JSON text of each exported schema (deterministic, newline-terminated)."""
    from pydantic import TypeAdapter

    from cosim.specs.hardware import Hardware
    from cosim.specs.workload import Workload

    hardware = _accept_units(Hardware.model_json_schema())
    hardware["$id"] = "hardware.schema.json"
    workload = TypeAdapter(Workload).json_schema()
    workload["$id"] = "workload.schema.json"
    return {
        "hardware.schema.json": json.dumps(hardware, indent=2, sort_keys=True) + "\n",
        "workload.schema.json": json.dumps(workload, indent=2, sort_keys=True) + "\n",
    }


def main(out_dir: Path = SCHEMA_DIR) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in build_schemas().items():
        (out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {out_dir / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
