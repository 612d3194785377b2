"""Benchmark of the cycle engine: one decode GEMM with stalls, a Llama-3.1-70B decode step, vs SCALE-Sim.

Run: .venv/bin/python benchmarks/bench_cycles.py [--scalesim-python /tmp/ssvenv/bin/python]
Writes reports/benchmarks/cycles.md. SCALE-Sim (pip `scalesim`, own venv) is timed once on the same
GEMM when its interpreter is given; otherwise the report says it was not measured.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time
from pathlib import Path

from cosim.engines.cycle.systolic import SystolicConfig, simulate_gemm

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeat=5):
    fn()  # compile / warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def llama70b_decode_gemms(batch: int = 16):
    """QKV, O, gate+up, down per layer (x80) and the LM head, from Llama-3.1-70B's config (h=8192,
    64 heads, 8 KV heads, head_dim 128, intermediate 28672, vocab 128256)."""
    h, heads, kv, hd, inter, vocab, layers = 8192, 64, 8, 128, 28672, 128256, 80
    per_layer = [(batch, h, (heads + 2 * kv) * hd), (batch, heads * hd, h), (batch, h, 2 * inter), (batch, inter, h)]
    return [(s, layers) for s in per_layer] + [((batch, h, vocab), 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalesim-python", default=None)
    args = ap.parse_args()
    cfg = SystolicConfig(128, 128, "ws", 1 << 20, 1 << 20, 1 << 20, 64.0)
    t_gemm = _best(lambda: simulate_gemm(cfg, 16, 4096, 4096))
    res = simulate_gemm(cfg, 16, 4096, 4096)
    tpu = SystolicConfig(128, 128, "ws", 4 << 20, 4 << 20, 4 << 20, 136.0, 2, 4)
    gemms = llama70b_decode_gemms()

    def step():
        return sum(simulate_gemm(tpu, *shape).total_cycles * rep for shape, rep in gemms)

    t_step = _best(step, repeat=2)
    ss_line = "not measured (no --scalesim-python given)"
    ratio = None
    if args.scalesim_python:
        code = ("import sys, time; sys.path.insert(0, '/tmp/ssbench'); import run_ss, os;"
                "os.makedirs('/tmp/ssbench/runs', exist_ok=True);"
                "r = run_ss.run(128, 128, 'ws', 16, 4096, 4096, 1024, 1024, 1024, 64); print(r['wall_s'], r['total'])")
        try:
            out = subprocess.run([args.scalesim_python, "-c", code], capture_output=True, text=True, timeout=3600)
            wall, total = out.stdout.split()[-2:]
            ratio = float(wall) / t_gemm
            ss_line = f"{float(wall):.1f} s (its total cycles {total}; cosim {res.total_cycles})"
        except Exception as err:  # record, never fail the benchmark
            ss_line = f"failed: {type(err).__name__}: {err}"
    lines = [
        "# Cycle engine benchmark", "",
        f"- machine: `{platform.uname()}`; nproc {os.cpu_count()}; date {datetime.date.today()}",
        "", "| case | cosim | target |", "| --- | --- | --- |",
        f"| 16x4096x4096 GEMM, 128x128 ws, 1 MiB buffers, 64 words/cycle (stalls modelled) | {t_gemm * 1e3:.2f} ms | <= 10 ms |",
        f"| Llama-3.1-70B decode step (batch 16, 321 GEMMs as 5 shapes), 4x 128x128 arrays | {t_step * 1e3:.1f} ms | <= 1 s |",
        "", f"SCALE-Sim v3.0.0 on the same GEMM: {ss_line}.",
    ]
    if ratio:
        lines.append(f"Speed-up over SCALE-Sim: {ratio:,.0f}x (target >= 10,000x).")
    out = ROOT / "reports" / "benchmarks" / "cycles.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
