"""Load and validate specs from YAML/JSON files or catalog slugs, with one-line errors.

A malformed spec raises `CosimInputError` naming the file, the field and what was expected.
YAML is read with the safe loader only.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from cosim.errors import CosimInputError
from cosim.specs.hardware import Hardware
from cosim.specs.workload import DecoderLM, VideoDiT, Workload

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def catalog_dir(kind: str) -> Path:
    """Directory of the built-in catalog: `hardware_specs` or `workloads` (installed or in the repo)."""
    installed = _PACKAGE_DIR / "_catalog" / kind
    if installed.is_dir():
        return installed
    repo = _PACKAGE_DIR.parent / kind
    if repo.is_dir():
        return repo
    raise CosimInputError(f"built-in catalog '{kind}' not found next to the cosim package")


#: PyYAML's safe loader, in C (libyaml) where the install has it: the same documents, several times faster on
#: the reference data `cosim validate` reads at every run (reports/benchmarks.md, "Validation speed")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_document(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON file into a mapping, or raise a one-line CosimInputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CosimInputError("file not found", file=str(path)) from None
    except OSError as err:
        raise CosimInputError(f"cannot read file ({err.strerror})", file=str(path)) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_YAML_LOADER)
    except json.JSONDecodeError as err:
        raise CosimInputError(f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}",
                              file=str(path)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise CosimInputError(f"malformed YAML{where}: {problem}", file=str(path)) from None
    if not isinstance(data, dict):
        raise CosimInputError(f"expected a mapping at the top level, got {type(data).__name__}",
                              file=str(path))
    return data


def format_validation_error(err: ValidationError, file: str | None, data: Any = None) -> CosimInputError:
    """Turn pydantic's error list into one readable line (the first error, plus a count)."""
    errors = err.errors(include_url=False)
    # A misspelt key shows up as an unknown key plus a missing one: report the unknown key first.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _clean_loc(first["loc"])
    field = ".".join(loc) or None
    kind = first["type"]
    msg = first["msg"]
    if kind == "extra_forbidden":
        parent = _lookup(data, loc[:-1])
        msg = "unknown key"
        allowed = _allowed_keys(err, loc)
        close = difflib.get_close_matches(loc[-1], allowed, n=3) if allowed else []
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        del parent
    elif kind == "missing":
        msg = "required field is missing"
    else:
        msg = msg.removeprefix("Value error, ")
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return CosimInputError(msg, file=file, field=field)


_DISCRIMINATOR_TAGS = ("dense", "moe", "video_dit")


def _clean_loc(loc) -> list[str]:
    """Error location as YAML field names: drop validator tags and the leading union discriminator."""
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    if parts and parts[0] in _DISCRIMINATOR_TAGS:
        parts = parts[1:]
    return parts


def _lookup(data: Any, loc: list[str]) -> Any:
    for key in loc:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def _allowed_keys(err: ValidationError, loc: list[str]) -> list[str]:
    """Field names that were missing at the same level: the likely intended spelling."""
    names = []
    for e in err.errors(include_url=False):
        eloc = _clean_loc(e["loc"])
        if e["type"] == "missing" and eloc[:-1] == loc[:-1]:
            names.append(eloc[-1])
    return names


def _validate(model, data: dict[str, Any], file: str | None):
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data)
        return model.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(err, file, data) from None


_WORKLOAD_ADAPTER = TypeAdapter(Workload)


def hardware_from_dict(data: dict[str, Any], file: str | None = None) -> Hardware:
    return _validate(Hardware, data, file)


def workload_from_dict(data: dict[str, Any], file: str | None = None) -> DecoderLM | VideoDiT:
    if "family" not in data:
        raise CosimInputError("required field is missing (one of dense, moe, video_dit)", file=file,
                              field="family")
    return _validate(_WORKLOAD_ADAPTER, data, file)


@functools.lru_cache(maxsize=256)
def _load_hardware_file(path: str) -> Hardware:
    return hardware_from_dict(read_document(Path(path)), path)


@functools.lru_cache(maxsize=256)
def _load_workload_file(path: str) -> DecoderLM | VideoDiT:
    p = Path(path)
    data = read_document(p)
    if p.suffix.lower() == ".json" and "family" not in data:
        from cosim.specs.hf_import import workload_from_hf_config

        return workload_from_hf_config(data, file=path)
    return workload_from_dict(data, path)


def list_slugs(kind: str) -> list[str]:
    """Catalog slugs of `hardware_specs` or `workloads`, sorted."""
    return sorted(p.stem for p in catalog_dir(kind).glob("*.yaml"))


def _resolve(name_or_path: str | Path, kind: str) -> Path:
    text = str(name_or_path)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or "/" in text or path.exists():
        return path
    candidate = _catalog_file(text, kind)
    if candidate is not None:
        return candidate
    slugs = list_slugs(kind)
    close = difflib.get_close_matches(text, slugs, n=3, cutoff=0.5)
    what = "hardware" if kind == "hardware_specs" else "workload"
    hint = f"; did you mean {', '.join(close)}?" if close else "; run 'cosim specs list' to see the catalog"
    raise CosimInputError(f"unknown {what} '{text}'{hint}")


def _resolved(name_or_path: str | Path, kind: str) -> str:
    """The absolute path a slug or path names (a catalog file's comes memoised, already absolute)."""
    path = _resolve(name_or_path, kind)
    return str(path if path.is_absolute() and path.parent == _catalog_parent(kind) else path.resolve())


@functools.lru_cache(maxsize=4)
def _catalog_parent(kind: str) -> Path:
    return catalog_dir(kind).resolve()


@functools.lru_cache(maxsize=512)
def _catalog_file(slug: str, kind: str) -> Path | None:
    """The catalog file of a slug, absolute, or None (memoised: a validation run looks slugs up ~20,000 times,
    and the specs they name are memoised by path already)."""
    candidate = catalog_dir(kind) / f"{slug}.yaml"
    return candidate.resolve() if candidate.is_file() else None


def load_hardware(name_or_path: str | Path) -> Hardware:
    """A hardware spec by catalog slug (`h100-sxm`) or path to a YAML file."""
    if isinstance(name_or_path, Hardware):
        return name_or_path
    return _load_hardware_file(_resolved(name_or_path, "hardware_specs"))


def load_workload(name_or_path: str | Path) -> DecoderLM | VideoDiT:
    """A workload by catalog slug (`llama-3.1-8b`), YAML path, or Hugging Face config.json path."""
    if isinstance(name_or_path, DecoderLM | VideoDiT):
        return name_or_path
    return _load_workload_file(_resolved(name_or_path, "workloads"))


def load_any(path: str | Path) -> Hardware | DecoderLM | VideoDiT:
    """Validate a file as whichever spec it is (hardware if it has `kind` and `compute`)."""
    p = Path(path)
    data = read_document(p)
    if "compute" in data or data.get("kind") in ("gpu", "tpu", "asic"):
        return hardware_from_dict(data, str(p))
    if p.suffix.lower() == ".json" and "family" not in data:
        from cosim.specs.hf_import import workload_from_hf_config

        return workload_from_hf_config(data, file=str(p))
    return workload_from_dict(data, str(p))
