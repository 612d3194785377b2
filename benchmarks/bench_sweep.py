"""Sweep throughput and memory: the 1M-point example end to end, and a 10M-point run's peak RSS.

Each run is a fresh `cosim sweep` process (Parquet included). The baseline, measured in the same run,
is the same engine called one design point at a time (what a peer tool without a sweep engine does),
so the ratio is the speed-up the chunked, vectorised sweep gives. The 10M run uses the same spec with
`points` raised: bounded memory means its peak RSS stays close to the 1M run's.

    .venv/bin/python benchmarks/bench_sweep.py [--skip-10m]

Writes reports/benchmarks/sweep.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "sweeps" / "llama70b_decode_1m.yaml"
REPORT = ROOT / "reports" / "benchmarks" / "sweep.md"
RUNNER = (
    "import resource, sys, time\n"
    "t = time.perf_counter()\n"
    "from cosim.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(f'BENCH wall_s={time.perf_counter() - t:.3f} maxrss_kib='\n"
    "      f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_sweep_process(spec: Path, out: Path) -> dict[str, float]:
    """One `cosim sweep` in a new process; wall time measured outside, RSS reported inside."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, "sweep", str(spec), "--output", str(out), "--fresh",
                           "-q", "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}): {proc.stderr.strip()}")
    line = next(x for x in proc.stderr.splitlines() if x.startswith("BENCH"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    return {"wall_s": wall, "maxrss_mib": float(fields["maxrss_kib"]) / 1024.0}


def single_point_rate(n: int = 200) -> float:
    """Design points per second when the engine is called with one point at a time."""
    import numpy as np

    from cosim.engines.hwarrays import HardwareArrays
    from cosim.engines.vectorized import evaluate_points
    from cosim.explore.engine import SweepContext
    from cosim.explore.sampling import chunk_points
    from cosim.explore.spec import load_sweep_spec

    spec = load_sweep_spec(SPEC)
    ctx = SweepContext.build(spec, base_dir=SPEC.parent)
    points = chunk_points(spec.model_copy(update={"chunk_size": n}), 0, n)
    base = HardwareArrays.from_hardware(ctx.hardware)
    evaluate_points(base, ctx.workloads[0], ctx.scenarios[0])  # compile / load the Numba cache
    t0 = time.perf_counter()
    for i in range(n):
        hwa = base
        for path, values in points.items():
            hwa = hwa.with_column(ctx.columns[path], np.asarray([values[i]]))
        evaluate_points(hwa, ctx.workloads[0], ctx.scenarios[0])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-10m", action="store_true", help="only the 1M run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_sweep_process(SPEC, tmp / "warm.parquet")  # first run fills the Numba cache; not reported
        one = run_sweep_process(SPEC, tmp / "one.parquet")
        one_size = (tmp / "one.parquet").stat().st_size
        ten = None
        if not args.skip_10m:
            data = yaml.safe_load(SPEC.read_text())
            data["sampling"]["points"] = 10_000_000
            spec10 = tmp / "ten.yaml"
            spec10.write_text(yaml.safe_dump(data))
            ten = run_sweep_process(spec10, tmp / "ten.parquet")
            ten["size"] = (tmp / "ten.parquet").stat().st_size
    baseline = single_point_rate()
    rate = 1_000_000 / one["wall_s"]
    uname = " ".join(platform.uname())
    lines = [
        "# Sweep benchmark",
        "",
        f"- machine: `{uname}`, nproc {os.cpu_count()}",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        "- spec: `examples/sweeps/llama70b_decode_1m.yaml` (Llama-3.1-70B decode, 5 hardware parameters, Sobol)",
        "- each sweep is a fresh `cosim sweep` process, Parquet output included, Numba cache warm",
        "",
        "| run | points | wall (s) | points/s | peak RSS (MiB) | Parquet (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| sweep 1M | 1,000,000 | {one['wall_s']:.2f} | {rate:,.0f} | {one['maxrss_mib']:.0f} | {one_size / 1e6:.0f} |",
    ]
    if ten:
        lines.append(f"| sweep 10M | 10,000,000 | {ten['wall_s']:.2f} | {1e7 / ten['wall_s']:,.0f} | "
                     f"{ten['maxrss_mib']:.0f} | {ten['size'] / 1e6:.0f} |")
    lines += [
        f"| baseline: one point per engine call | 200 | - | {baseline:,.0f} | - | - |",
        "",
        f"Speed-up of the chunked sweep over one-point-at-a-time calls: **{rate / baseline:,.0f}x** "
        f"(1M run; target: 1M points in <= 10 s on this 2-core machine: "
        f"{'met' if one['wall_s'] <= 10 else 'NOT met'}).",
    ]
    if ten:
        lines.append(f"Peak RSS of the 10M run is {ten['maxrss_mib'] / one['maxrss_mib']:.2f}x the 1M run's: "
                     "memory is bounded by the chunk size, not the number of points.")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
