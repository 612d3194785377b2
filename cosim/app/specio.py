"""Specs typed or uploaded in the explorer: text -> validated spec, with one-line errors naming the field.

A spec reference is either a catalog slug (str) or a `SpecText` (file name + text), which is
hashable, so cached calls are keyed by the text itself and never by an object identity.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import yaml

from cosim.errors import CosimInputError

MAX_SPEC_BYTES = 1_000_000


class SpecText(NamedTuple):
    """An uploaded or edited spec: its file name (decides YAML vs JSON) and its text."""

    name: str
    text: str


def read_text(name: str, text: str) -> dict[str, Any]:
    """Parse YAML or JSON text into a mapping, or raise a one-line CosimInputError."""
    if len(text.encode("utf-8", errors="replace")) > MAX_SPEC_BYTES:
        raise CosimInputError(f"file is larger than {MAX_SPEC_BYTES // 1000} kB; a spec is a few kB", file=name)
    try:
        data = json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise CosimInputError(f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}", file=name) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise CosimInputError(f"malformed YAML{where}: {getattr(err, 'problem', None) or 'invalid YAML'}",
                              file=name) from None
    if not isinstance(data, dict):
        raise CosimInputError(f"expected a mapping at the top level, got {type(data).__name__}", file=name)
    return data


def is_hardware(data: dict[str, Any]) -> bool:
    return "compute" in data or data.get("kind") in ("gpu", "tpu", "asic")


def parse_hardware(ref: SpecText):
    from cosim.specs.loader import hardware_from_dict

    data = read_text(ref.name, ref.text)
    if not is_hardware(data):
        raise CosimInputError("not a hardware spec (no 'compute' section)", file=ref.name, field="compute")
    return hardware_from_dict(data, ref.name)


def parse_workload(ref: SpecText):
    """A workload from YAML, or from a Hugging Face config.json (a JSON object without `family`)."""
    from cosim.specs.loader import workload_from_dict

    data = read_text(ref.name, ref.text)
    if ref.name.lower().endswith(".json") and "family" not in data:
        from cosim.specs.hf_import import workload_from_hf_config

        return workload_from_hf_config(data, file=ref.name)
    if is_hardware(data):
        raise CosimInputError("this is a hardware spec; upload it as hardware", file=ref.name)
    return workload_from_dict(data, ref.name)


def parse_any(ref: SpecText):
    """Whichever spec the text is (hardware when it has a `compute` section)."""
    data = read_text(ref.name, ref.text)
    return parse_hardware(ref) if is_hardware(data) else parse_workload(ref)


def resolve_hardware(ref: str | SpecText):
    from cosim.specs.loader import load_hardware

    return parse_hardware(ref) if isinstance(ref, SpecText) else load_hardware(ref)


def resolve_workload(ref: str | SpecText):
    from cosim.specs.loader import load_workload

    return parse_workload(ref) if isinstance(ref, SpecText) else load_workload(ref)


def ref_label(ref: str | SpecText) -> str:
    return f"{ref.name} (uploaded)" if isinstance(ref, SpecText) else ref
