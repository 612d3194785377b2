"""The rows cosim misses beyond a target's worst-case bound, each with the stated cause of its family.

The causes are curated in `cosim/data/reference/known_misses.yaml` (patterns on row ids, first match wins);
the rows come from the stored leave-one-out errors, so the list follows every refit. A row beyond the bound
that no family covers is reported as not yet explained rather than left out.
"""

from __future__ import annotations

import fnmatch
import functools
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosim.errors import CosimInputError
from cosim.specs.loader import read_document
from cosim.validate.targets import TARGETS, cv_rows

KNOWN_MISSES_PATH = Path(__file__).resolve().parent.parent / "data" / "reference" / "known_misses.yaml"
#: family of a row beyond the bound that no entry covers
UNEXPLAINED = "unexplained"
COLUMNS = ["target", "id", "hardware", "workload", "error", "family", "cause", "tried", "see"]


class MissFamily(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)
    rows: list[str] = Field(min_length=1)
    cause: str = Field(min_length=1)
    tried: str = Field(min_length=1)
    see: str = Field(min_length=1)  # a heading of cosim/validate/notes.md


class KnownMisses(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    families: list[MissFamily]


@functools.lru_cache(maxsize=2)
def load_known_misses(path: str | None = None) -> tuple[MissFamily, ...]:
    """The curated miss families, validated; a malformed file is an error naming the file and the field."""
    p = Path(path) if path else KNOWN_MISSES_PATH
    try:
        doc = KnownMisses.model_validate(read_document(p))
    except ValidationError as err:
        first = err.errors()[0]
        raise CosimInputError(first["msg"], file=str(p), field=".".join(str(x) for x in first["loc"])) from None
    keys = [f.key for f in doc.families]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise CosimInputError(f"family key '{dup}' appears twice", file=str(p), field="families.key")
    return tuple(doc.families)


def family_of(row_id: str, families: tuple[MissFamily, ...]) -> MissFamily | None:
    """The first family with a pattern matching `row_id`, or None."""
    return next((f for f in families if any(fnmatch.fnmatchcase(row_id, pat) for pat in f.rows)), None)


def target_misses(rows: pd.DataFrame | None = None, families: tuple[MissFamily, ...] | None = None) -> pd.DataFrame:
    """One line per row beyond the worst-case bound of a target (largest |error| first): the target, the row,
    its leave-one-out error and its family's cause, or `UNEXPLAINED`."""
    rows = cv_rows() if rows is None else rows
    families = load_known_misses() if families is None else families
    out = []
    for tg in TARGETS:
        if tg.worst_abs_error is None or not len(rows):
            continue
        sel = rows[tg.select(rows) & (rows["error"].abs() > tg.worst_abs_error)]
        for r in sel.reindex(sel["error"].abs().sort_values(ascending=False).index).itertuples(index=False):
            fam = family_of(r.id, families)
            out.append({"target": tg.name, "id": r.id, "hardware": r.hardware, "workload": r.workload,
                        "error": float(r.error), "family": fam.key if fam else UNEXPLAINED,
                        "cause": fam.cause if fam else "not yet explained", "tried": fam.tried if fam else "",
                        "see": fam.see if fam else ""})
    return pd.DataFrame(out, columns=COLUMNS)
