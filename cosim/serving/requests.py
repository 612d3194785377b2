"""Request streams: arrival times and prompt/output lengths, seeded and reproducible.

Arrivals are Poisson, Gamma with a coefficient of variation (CV > 1 is burstier than Poisson),
constant-rate, all-at-once (offline), or read from a trace CSV. Lengths are fixed, uniform,
lognormal or a named dataset profile (`cosim/data/dataset_profiles.yaml`, every figure sourced).

Length syntax (`parse_length_spec`), used by `cosim serve --input-len/--output-len`:
  N | fixed:N | uniform:LO:HI | lognormal:MEAN:SIGMA[:MAX] | profile:NAME | trace:FILE.csv
MEAN is the arithmetic mean in tokens, SIGMA the standard deviation of log(length).
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cosim.errors import CosimInputError

PROFILES_PATH = Path(__file__).resolve().parent.parent / "data" / "dataset_profiles.yaml"
TRACE_COLUMNS = ("arrival_time_s", "input_len", "output_len")


@dataclass(frozen=True)
class LengthDist:
    """A token-length distribution: kind 'fixed' | 'uniform' | 'lognormal' | 'trace'."""

    kind: str
    a: float = 0.0  # fixed value, uniform low, lognormal mean
    b: float = 0.0  # uniform high, lognormal sigma
    cap: float = 0.0  # lognormal max (0: none)
    label: str = ""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n integer lengths >= 1."""
        if self.kind == "fixed":
            return np.full(n, int(self.a), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(int(self.a), int(self.b) + 1, size=n, dtype=np.int64)
        if self.kind == "lognormal":
            sigma = self.b
            mu = np.log(self.a) - 0.5 * sigma * sigma
            x = np.rint(rng.lognormal(mu, sigma, size=n))
            if self.cap > 0:
                x = np.minimum(x, self.cap)
            return np.maximum(x, 1).astype(np.int64)
        raise CosimInputError(f"length distribution '{self.kind}' cannot be sampled")

    @property
    def mean(self) -> float:
        """The distribution's nominal mean (before rounding and capping)."""
        if self.kind == "fixed":
            return float(self.a)
        if self.kind == "uniform":
            return 0.5 * (self.a + self.b)
        return float(self.a)

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean) of the lengths, in closed form (rounding ignored); a
        capped lognormal is min(X, cap), whose moments are E[min(X, c)^k] = e^(k mu + k² sigma² / 2)
        Phi(z - k sigma) + c^k (1 - Phi(z)), z = (ln c - mu) / sigma."""
        if self.kind == "fixed":
            return 0.0
        if self.kind == "uniform":
            return (self.b - self.a) / math.sqrt(12.0) / max(self.mean, 1e-12)
        if self.kind != "lognormal":
            raise CosimInputError(f"length distribution '{self.kind}' has no closed-form spread")
        sigma = self.b
        if self.cap <= 0:
            return math.sqrt(math.expm1(sigma * sigma))
        mu = math.log(self.a) - 0.5 * sigma * sigma
        z = (math.log(self.cap) - mu) / sigma

        def phi(x: float) -> float:
            return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

        m1 = math.exp(mu + 0.5 * sigma ** 2) * phi(z - sigma) + self.cap * (1.0 - phi(z))
        m2 = math.exp(2.0 * mu + 2.0 * sigma ** 2) * phi(z - 2.0 * sigma) + self.cap ** 2 * (1.0 - phi(z))
        return math.sqrt(max(m2 / (m1 * m1) - 1.0, 0.0))


@dataclass(frozen=True)
class Trace:
    """A request trace: arrival times (s, sorted), input and output lengths."""

    arrival_s: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    path: str


@functools.cache
def load_profiles(path: str = str(PROFILES_PATH)) -> dict:
    """The dataset profiles YAML as a dict (profiles -> {input, output, description})."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return data


def profile_length(name: str, side: str) -> LengthDist:
    """The `side` ('input' or 'output') length distribution of dataset profile `name`."""
    profiles = load_profiles()["profiles"]
    if name not in profiles:
        raise CosimInputError(f"unknown length profile '{name}'; known: {', '.join(sorted(profiles))}")
    spec = profiles[name][side]
    val = {k: (v["value"] if isinstance(v, dict) else v) for k, v in spec.items() if k != "dist"}
    kind = spec["dist"]
    if kind == "fixed":
        return LengthDist("fixed", float(val["value"]), label=f"profile:{name}")
    if kind == "uniform":
        return LengthDist("uniform", float(val["low"]), float(val["high"]), label=f"profile:{name}")
    return LengthDist("lognormal", float(val["mean"]), float(val["sigma"]), float(val.get("max", 0.0)),
                      label=f"profile:{name}")


def _positive_int(text: str, flag: str, what: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise CosimInputError(f"{flag}: {what} must be a positive integer, got '{text}'") from None
    if value != int(value) or value <= 0:
        raise CosimInputError(f"{flag}: {what} must be a positive integer, got '{text}'")
    return int(value)


def _positive_float(text: str, flag: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CosimInputError(f"{flag}: {what} must be a positive number, got '{text}'") from None
    if not np.isfinite(value) or value <= 0:
        raise CosimInputError(f"{flag}: {what} must be a positive number, got '{text}'")
    return value


def parse_length_spec(text: str, side: str = "input", flag: str = "--input-len") -> LengthDist | str:
    """Parse `N | fixed:N | uniform:LO:HI | lognormal:MEAN:SIGMA[:MAX] | profile:NAME`.

    Returns a LengthDist, or the CSV path string for `trace:FILE.csv`.
    """
    text = str(text).strip()
    parts = text.split(":")
    kind = parts[0].lower()
    if len(parts) == 1:
        return LengthDist("fixed", _positive_int(text, flag, "length"), label=text)
    if kind == "fixed" and len(parts) == 2:
        return LengthDist("fixed", _positive_int(parts[1], flag, "length"), label=text)
    if kind == "uniform" and len(parts) == 3:
        lo = _positive_int(parts[1], flag, "uniform low")
        hi = _positive_int(parts[2], flag, "uniform high")
        if hi < lo:
            raise CosimInputError(f"{flag}: uniform high ({hi}) must be >= low ({lo})")
        return LengthDist("uniform", lo, hi, label=text)
    if kind == "lognormal" and len(parts) in (3, 4):
        mean = _positive_float(parts[1], flag, "lognormal mean")
        sigma = _positive_float(parts[2], flag, "lognormal sigma")
        cap = _positive_int(parts[3], flag, "lognormal max") if len(parts) == 4 else 0
        return LengthDist("lognormal", mean, sigma, float(cap), label=text)
    if kind == "profile" and len(parts) == 2:
        return profile_length(parts[1], "input" if side == "input" else "output")
    if kind == "trace" and len(parts) >= 2:
        return text.split(":", 1)[1]
    raise CosimInputError(
        f"{flag}: cannot parse '{text}'; expected N, fixed:N, uniform:LO:HI, lognormal:MEAN:SIGMA[:MAX], "
        "profile:NAME or trace:FILE.csv")


def read_trace(path: str | Path) -> Trace:
    """Read a trace CSV with columns arrival_time_s, input_len, output_len (header required).

    Missing columns, non-numeric or non-positive lengths, negative or unsorted times raise a
    CosimInputError naming the file and line number.
    """
    p = Path(path)
    try:
        fh = open(p, encoding="utf-8", newline="")  # noqa: SIM115 (closed by the with-block below)
    except FileNotFoundError:
        raise CosimInputError("trace file not found", file=str(p)) from None
    except OSError as err:
        raise CosimInputError(f"cannot read trace ({err.strerror})", file=str(p)) from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise CosimInputError("trace is empty (line 1: expected a header "
                                  f"{','.join(TRACE_COLUMNS)})", file=str(p))
        names = [h.strip() for h in header]
        missing = [c for c in TRACE_COLUMNS if c not in names]
        if missing:
            raise CosimInputError(f"line 1: missing column(s) {', '.join(missing)}; expected "
                                  f"{','.join(TRACE_COLUMNS)}", file=str(p))
        idx = [names.index(c) for c in TRACE_COLUMNS]
        times, ins, outs = [], [], []
        last = -np.inf
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(names):
                raise CosimInputError(f"line {lineno}: expected {len(names)} columns, got {len(row)}", file=str(p))
            try:
                t = float(row[idx[0]])
                a = float(row[idx[1]])
                b = float(row[idx[2]])
            except ValueError:
                raise CosimInputError(f"line {lineno}: non-numeric value in {row}", file=str(p)) from None
            if not np.isfinite(t) or t < 0:
                raise CosimInputError(f"line {lineno}: arrival_time_s must be >= 0, got {row[idx[0]]}", file=str(p))
            if t < last:
                raise CosimInputError(f"line {lineno}: arrival times are not sorted ({t} after {last})", file=str(p))
            for name, v in (("input_len", a), ("output_len", b)):
                if v != int(v) or v <= 0:
                    raise CosimInputError(f"line {lineno}: {name} must be a positive integer, got {v:g}",
                                          file=str(p))
            last = t
            times.append(t)
            ins.append(int(a))
            outs.append(int(b))
    if not times:
        raise CosimInputError("trace has no requests", file=str(p))
    return Trace(np.asarray(times, dtype=np.float64), np.asarray(ins, dtype=np.int64),
                 np.asarray(outs, dtype=np.int64), str(p))


def arrival_times(kind: str, qps: float, duration_s: float, rng: np.random.Generator,
                  cv: float = 1.0) -> np.ndarray:
    """Arrival times in [0, duration_s) at mean rate `qps`: 'poisson', 'gamma' (with `cv`), 'constant'."""
    if not (qps > 0 and np.isfinite(qps)):
        raise CosimInputError(f"--qps must be a positive number, got {qps}")
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise CosimInputError(f"--duration must be a positive number of seconds, got {duration_s}")
    expected = qps * duration_s
    if kind == "constant":
        n = int(np.ceil(expected - 1e-9))
        return np.arange(n, dtype=np.float64) / qps
    if kind not in ("poisson", "gamma"):
        raise CosimInputError(f"unknown arrival process '{kind}'; expected poisson, gamma or constant")
    if kind == "gamma" and not (cv > 0 and np.isfinite(cv)):
        raise CosimInputError(f"gamma arrivals need a positive CV, got {cv}")
    chunks = []
    t = 0.0
    size = int(expected + 6 * np.sqrt(expected) + 16)
    while t < duration_s:
        if kind == "poisson":
            gaps = rng.exponential(1.0 / qps, size=size)
        else:
            shape = 1.0 / (cv * cv)
            gaps = rng.gamma(shape, 1.0 / (qps * shape), size=size)
        times = t + np.cumsum(gaps)
        chunks.append(times)
        t = float(times[-1])
    times = np.concatenate(chunks)
    return times[times < duration_s]


def parse_arrival_spec(text: str) -> tuple[str, float]:
    """`poisson` | `constant` | `gamma:CV` -> (kind, cv)."""
    parts = str(text).strip().lower().split(":")
    if parts[0] in ("poisson", "constant") and len(parts) == 1:
        return parts[0], 1.0
    if parts[0] == "gamma" and len(parts) == 2:
        return "gamma", _positive_float(parts[1], "--arrival", "gamma CV")
    raise CosimInputError(f"--arrival: cannot parse '{text}'; expected poisson, constant or gamma:CV")
