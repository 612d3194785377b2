"""Benchmark: design points per second of the analytical engine, Llama-3.1-70B decode (not a timed test).

Measures, in one run on this machine:
1. cosim: `evaluate_points` on N H100-based design points (HBM bandwidth, peak FLOP/s, NVLink bandwidth,
   HBM capacity and on-chip capacity varied at random) for Llama-3.1-70B decode (fp8, TP4, batch 64,
   context 2048), after warm-up; best of 3 runs; the kernel alone is timed too.
2. GenZ (`genz-llm` from PyPI, in its own virtual environment, never a cosim dependency): the per-point
   time of `decode_moddeling` for the same model and mapping, if the package is installed at
   $GENZ_PYTHON (default /tmp/genz-venv/bin/python).
Prints the ratio and writes reports/benchmarks/analytical.md (machine: uname -a, nproc, date).

Run: .venv/bin/python benchmarks/bench_analytical.py [--points 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GENZ_SNIPPET = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from GenZ import decode_moddeling, System
from GenZ.Models import get_configs
n = int(sys.argv[1])
system = System(flops=989, offchip_mem_bw=3350, frequency=1980, off_chip_mem_size=80*1024,
                interchip_link_bw=450, external_mem_bw=0, compute_efficiency=1, memory_efficiency=1,
                comm_efficiency=1, bits='fp8')
kw = dict(model='meta-llama/Llama-3.1-70B', batch_size=64, input_tokens=2048, output_tokens=1,
          system_name=system, bits='fp8', tensor_parallel=4, pipeline_parallel=1, debug=False)
decode_moddeling(**kw)  # warm-up
t0 = time.perf_counter()
for _ in range(n):
    out = decode_moddeling(**kw)
dt = (time.perf_counter() - t0) / n
print(json.dumps({"seconds_per_point": dt, "latency_ms": float(out["Latency"])}))
"""


def bench_cosim(n: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from cosim.cli.common import build_scenario
    from cosim.engines import analytical as A
    from cosim.engines.efficiency import engine_params
    from cosim.engines.hwarrays import HardwareArrays
    from cosim.engines.vectorized import evaluate_points, warmup
    from cosim.graph.build import decode_graph
    from cosim.specs.loader import load_hardware, load_workload

    t0 = time.perf_counter()
    warmup()
    warm = time.perf_counter() - t0
    base = HardwareArrays.from_hardware(load_hardware("h100-sxm"))
    rng = np.random.default_rng(0)
    hw = base.repeat_to(n)
    for col in ("mem_bandwidth_bytes_per_s", "scale_up_bandwidth_bytes_per_s", "mem_capacity_bytes",
                "onchip_capacity_bytes"):
        hw = hw.with_column(col, getattr(hw, col) * rng.uniform(0.5, 2.0, n))
    hw.peak_flops_per_s[:] = hw.peak_flops_per_s * rng.uniform(0.5, 2.0, (n, 1))
    wl = load_workload("llama-3.1-70b")
    sc = build_scenario(phase="decode", batch=64, input_len=2048, tp=4, precision="fp8")
    params = engine_params("nvidia-gpu")
    evaluate_points(base, wl, sc, params=params)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = evaluate_points(hw, wl, sc, params=params)
        times.append(time.perf_counter() - t0)
    table = decode_graph(wl, sc, 2048)
    opf, opi = A.pack_ops(table, params)
    prm = A.pack_params(params, footprint_bytes=1e10, weight_footprint_bytes=1e10)
    args = A.hw_args(hw)
    eff = A.eff_vector(params)
    opf = A.precompute_quantisation(args, opf, opi, prm, eff)
    ktimes = []
    for _ in range(3):
        t0 = time.perf_counter()
        A.evaluate_kernel(*args, opf, opi, prm, eff)
        ktimes.append(time.perf_counter() - t0)
    single = evaluate_points(base, wl, sc, params=params)
    return {"points": n, "ops": len(table), "warmup_s": warm, "best_s": min(times), "kernel_best_s": min(ktimes),
            "points_per_s": n / min(times), "kernel_points_per_s": n / min(ktimes),
            "tpot_ms_h100": float(single["tpot_s"][0]) * 1e3, "feasible_share": float(np.mean(out["feasible"]))}


def bench_genz(n: int) -> dict:
    python = os.environ.get("GENZ_PYTHON", "/tmp/genz-venv/bin/python")
    if not Path(python).exists():
        return {"error": f"GenZ interpreter {python} not found (pip install genz-llm into its own venv)"}
    try:
        res = subprocess.run([python, "-c", GENZ_SNIPPET, str(n)], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "GenZ run timed out"}
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["unknown error"])[-1][:300]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--genz-points", type=int, default=20)
    args = ap.parse_args()
    c = bench_cosim(args.points)
    g = bench_genz(args.genz_points)
    per_point = c["best_s"] / c["points"]
    ratio = g["seconds_per_point"] / per_point if "seconds_per_point" in g else None
    uname = " ".join(platform.uname())
    nproc = os.cpu_count()
    lines = [
        "# Analytical engine: design points per second (Llama-3.1-70B decode)",
        "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: `{uname}`, nproc {nproc} (shared with other jobs; load average at start "
        f"{os.getloadavg()[0]:.1f})",
        "- workload: Llama-3.1-70B decode, fp8, TP4, batch 64, context 2048 "
        f"({c['ops']} op rows); {c['points']:,} H100-based points with 5 varied parameters",
        f"- Numba warm-up (compile or cache load): {c['warmup_s']:.2f} s",
        "",
        "| measurement | value |",
        "| --- | --- |",
        f"| cosim `evaluate_points`, best of 3 | {c['best_s']:.3f} s = **{c['points_per_s']:,.0f} points/s** "
        f"({per_point * 1e9:.0f} ns/point) |",
        f"| cosim kernel alone, best of 3 | {c['kernel_best_s']:.3f} s = {c['kernel_points_per_s']:,.0f} points/s |",
        f"| cosim TPOT on the base H100 point | {c['tpot_ms_h100']:.2f} ms |",
    ]
    if ratio is not None:
        lines += [f"| GenZ `decode_moddeling`, mean of {args.genz_points} calls | {g['seconds_per_point'] * 1e3:.1f} ms/point "
                  f"(GenZ latency {g['latency_ms']:.2f} ms) |",
                  f"| **cosim speed-up per point vs GenZ** | **{ratio:,.0f}x** |"]
    else:
        lines += [f"| GenZ | not measured: {g['error']} |"]
    lines += ["", "Targets (issue 3): >= 1,000,000 points/s; >= 10,000x GenZ per point.", ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "reports" / "benchmarks" / "analytical.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
