"""Finance inputs: defaults with sources, a user's YAML on top, each input a point or a distribution.

An input is written as a number, a named value (`pue: hyperscaler`), `{value: x, source: ...}`, or a
range: `{low, base, high}` (triangular), `{dist: uniform, low, high}`, `{dist: lognormal, median,
sigma}`. Every input resolves to a `Dist` with a base (point estimate), a low/high pair (for the
tornado table) and a seeded vectorised sampler (for Monte Carlo). Invalid values raise
`CosimInputError` naming the field (a negative price, a PUE below 1, a utilisation outside (0, 1],
a lifetime of zero).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cosim.errors import CosimInputError

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "data" / "cost_defaults.yaml"
Z90 = 1.2815515655446004  # standard normal quantile at 0.9: lognormal low/high are its P10/P90


def _nonneg(v: float) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v:g}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v:g}"


def _unit_interval(v: float) -> str | None:
    return None if 0 < v <= 1 else f"must be in (0, 1], got {v:g}"


def _pue(v: float) -> str | None:
    return None if v >= 1 else f"must be >= 1, got {v:g}"


def _rate(v: float) -> str | None:
    return None if v > -1 else f"must be > -1, got {v:g}"


#: Each finance input and the check its values (base, low, high) must pass.
CHECKS: dict[str, Callable[[float], str | None]] = {
    "cloud_price_usd_per_hour": _nonneg,
    "accelerator_price_usd": _nonneg,
    "server_overhead_fraction": _nonneg,
    "network_overhead_fraction": _nonneg,
    "lifetime_years": _positive,
    "cost_of_capital": _rate,
    "electricity_usd_per_kwh": _nonneg,
    "pue": _pue,
    "system_power_w_per_chip": _nonneg,
    "server_power_over_tdp": _nonneg,
    "average_power_fraction": _nonneg,
    "hosting_usd_per_kw_month": _nonneg,
    "operations_usd_per_chip_year": _nonneg,
    "utilization": _unit_interval,
    "availability": _unit_interval,
    "throughput_factor": _positive,
}
META_KEYS = ("cloud_price_source", "cloud_price_date", "accelerator_price_source")


@dataclass(frozen=True)
class Dist:
    """One input: `base` is the point estimate; `low`/`high` bound the tornado swing."""

    kind: str  # point | triangular | uniform | lognormal
    base: float
    low: float
    high: float
    sigma: float = 0.0
    source: str | None = None

    @property
    def uncertain(self) -> bool:
        return self.low != self.high

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n seeded draws; a degenerate range returns the base exactly."""
        if not self.uncertain or self.kind == "point":
            return np.full(n, self.base)
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, n)
        if self.kind == "lognormal":
            if self.sigma == 0:
                return np.full(n, self.base)
            return self.base * np.exp(self.sigma * rng.standard_normal(n))
        return rng.triangular(self.low, self.base, self.high, n)


def _number(v: Any, name: str, file: str | None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CosimInputError(f"expected a number, got {v!r}", file=file, field=name)
    f = float(v)
    if not math.isfinite(f):
        raise CosimInputError(f"must be finite, got {v!r}", file=file, field=name)
    return f


def parse_dist(name: str, raw: Any, *, named: dict[str, dict[str, float]] | None = None,
               file: str | None = None) -> Dist | None:
    """A `Dist` from a YAML value (None stays None: "take it from the spec")."""
    named = named or {}
    source = None
    if isinstance(raw, dict) and "value" in raw and not ({"low", "high", "dist", "median"} & raw.keys()):
        source = raw.get("source")
        raw = raw["value"]
    if raw is None:
        return None
    if isinstance(raw, str):
        table = named.get(name, {})
        if raw not in table:
            hint = f"; known names: {', '.join(table)}" if table else "; expected a number"
            raise CosimInputError(f"unknown named value '{raw}'{hint}", file=file, field=name)
        dist = Dist("point", float(table[raw]), float(table[raw]), float(table[raw]), source=f"named: {raw}")
    elif isinstance(raw, dict):
        unknown = set(raw) - {"dist", "low", "base", "high", "median", "sigma", "source", "note", "mode", "estimate",
                                 "derivation"}
        if unknown:
            raise CosimInputError(f"unknown key(s) {sorted(unknown)} in a distribution", file=file, field=name)
        kind = raw.get("dist", "triangular")
        source = raw.get("source")
        if kind == "lognormal":
            median = _number(raw.get("median"), name, file)
            sigma = _number(raw.get("sigma", 0.0), name, file)
            if median <= 0 or sigma < 0:
                raise CosimInputError("a lognormal needs median > 0 and sigma >= 0", file=file, field=name)
            dist = Dist("lognormal", median, median * math.exp(-Z90 * sigma), median * math.exp(Z90 * sigma),
                        sigma=sigma, source=source)
        elif kind in ("triangular", "uniform"):
            low = _number(raw.get("low"), name, file)
            high = _number(raw.get("high"), name, file)
            base_raw = raw.get("base", raw.get("mode"))
            base = (low + high) / 2.0 if base_raw is None and kind == "uniform" else _number(base_raw, name, file)
            if not low <= base <= high:
                raise CosimInputError(f"needs low <= base <= high, got {low:g}, {base:g}, {high:g}",
                                      file=file, field=name)
            dist = Dist(kind, base, low, high, source=source)
        else:
            raise CosimInputError(f"unknown dist '{kind}'; expected triangular, uniform or lognormal",
                                  file=file, field=name)
    else:
        v = _number(raw, name, file)
        dist = Dist("point", v, v, v, source=source)
    check = CHECKS.get(name)
    if check is not None:
        for v in {dist.base, dist.low, dist.high}:
            problem = check(v)
            if problem:
                raise CosimInputError(problem, file=file, field=name)
    return dist


@functools.cache
def _defaults_doc() -> dict[str, Any]:
    return yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))


@dataclass
class FinanceInputs:
    """Resolved inputs (`None` where the hardware spec must supply the value) and their sources."""

    dists: dict[str, Dist | None]
    meta: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def base(self, name: str) -> float | None:
        d = self.dists.get(name)
        return None if d is None else d.base

    def uncertain(self) -> list[str]:
        return [k for k, d in self.dists.items() if d is not None and d.uncertain]

    def with_value(self, name: str, value: float) -> FinanceInputs:
        dists = dict(self.dists)
        dists[name] = Dist("point", value, value, value, source="set")
        return FinanceInputs(dists, dict(self.meta), dict(self.sources))


def load_finance(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FinanceInputs:
    """Defaults, then the user's YAML (`path`), then `overrides` (e.g. from `--set key=value`)."""
    doc = _defaults_doc()
    named = doc.get("named_values", {})
    raw: dict[str, Any] = {k: v for k, v in doc["inputs"].items()}
    origin = {k: "default" for k in raw}
    user_file = None
    if path is not None:
        from cosim.specs.loader import read_document

        user_file = str(path)
        user = read_document(Path(path))
        user.pop("schema", None)
        user.pop("notes", None)
        for k, v in user.items():
            if k not in CHECKS and k not in META_KEYS:
                import difflib

                close = difflib.get_close_matches(k, list(CHECKS) + list(META_KEYS), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise CosimInputError(f"unknown finance input{hint}", file=user_file, field=k)
            raw[k] = v
            origin[k] = user_file
    for k, v in (overrides or {}).items():
        if k not in CHECKS and k not in META_KEYS:
            raise CosimInputError("unknown finance input (see cosim/data/cost_defaults.yaml)", field=k)
        raw[k] = v
        origin[k] = "--set"
    meta = {k: str(raw.pop(k)) for k in META_KEYS if raw.get(k) is not None}
    for k in META_KEYS:
        raw.pop(k, None)
    dists: dict[str, Dist | None] = {}
    sources: dict[str, str] = {}
    for k, v in raw.items():
        dists[k] = parse_dist(k, v, named=named, file=None if origin[k] in ("default", "--set") else origin[k])
        src = v.get("source") if isinstance(v, dict) else None
        sources[k] = origin[k] if not src else f"{origin[k]}: {src}"
    if "cloud_price_source" in meta:
        sources["cloud_price_usd_per_hour"] = meta["cloud_price_source"]
    if "accelerator_price_source" in meta:
        sources["accelerator_price_usd"] = meta["accelerator_price_source"]
    return FinanceInputs(dists, meta, sources)


def source_citations() -> dict[str, str]:
    """Source key -> citation for the defaults file."""
    return dict(_defaults_doc().get("sources", {}))


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values parsed as YAML scalars (numbers, names, null)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CosimInputError(f"--set expects key=value, got '{item}'", field="--set")
        key, text = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(text)
    return out


def crf(rate, years):
    """Capital recovery factor r(1+r)^L / ((1+r)^L - 1); 1/L at r = 0 (straight line). Vectorised."""
    r = np.asarray(rate, dtype=np.float64)
    n = np.asarray(years, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.power(1.0 + r, n)
        annuity = r * growth / (growth - 1.0)
    out = np.where(np.abs(r) < 1e-12, 1.0 / n, annuity)
    return float(out) if out.ndim == 0 else out
