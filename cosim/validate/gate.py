"""Regression gate: the median |error| of every group may not worsen beyond its stored threshold.

`cosim validate --update-thresholds` stores each group's current median |error| plus a margin in
`cosim/data/validation_thresholds.yaml`; CI runs the check, so no change silently loses accuracy.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml

THRESHOLDS_PATH = Path(__file__).resolve().parent.parent / "data" / "validation_thresholds.yaml"
#: allowed worsening of a group's median |error| before the gate fails (absolute, 0.02 = 2 points)
MARGIN = 0.02


def _key(group_by: str, group: str) -> str:
    return f"{group_by}={group}"


def write_thresholds(summary: pd.DataFrame, path: Path = THRESHOLDS_PATH) -> dict:
    groups = {_key(r.group_by, r.group): round(float(r.median_abs_error) + MARGIN, 4)
              for r in summary.itertuples(index=False)}
    doc = {"schema_version": 1, "date": dt.date.today().isoformat(), "margin": MARGIN,
           "note": "median |error| per group at the time of writing plus the margin; regenerate with "
                   "`cosim validate --update-thresholds` only when a change is meant to move accuracy",
           "groups": groups}
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=110))
    return doc


def check_thresholds(summary: pd.DataFrame, path: Path = THRESHOLDS_PATH) -> list[str]:
    """Violations as readable lines (empty when every stored group is within its threshold)."""
    if not path.is_file():
        return [f"no thresholds file at {path}; run `cosim validate --update-thresholds`"]
    stored = yaml.safe_load(path.read_text())["groups"]
    current = {_key(r.group_by, r.group): float(r.median_abs_error) for r in summary.itertuples(index=False)}
    problems = []
    for key, limit in stored.items():
        if key not in current:
            problems.append(f"{key}: group no longer predicted (was within {limit:.3f})")
        elif current[key] > limit:
            problems.append(f"{key}: median |error| {current[key]:.3f} > threshold {limit:.3f}")
    return problems
