"""Accuracy snapshot: uncalibrated cosim predictions vs published TensorRT-LLM offline throughput rows.

Reads /work/shared/data/measurements_calibration.yaml (or $COSIM_CALIBRATION), maps the
high-reliability `trtllm-perf-*` rows whose hardware and model are in the catalog to a `generate`
estimate (fp8, the row's TP, its input/output lengths, `--batch max`: the largest static batch whose
KV cache for input + output tokens fits), and prints predicted vs measured output tokens/s with the
signed error. No parameter is fitted to these rows. Not a test; `cosim validate` (issue 7) supersedes it.

Run: .venv/bin/python benchmarks/accuracy_snapshot.py
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COSIM_CALIBRATION", "/work/shared/data/measurements_calibration.yaml"))
HW = {"h100": "h100-sxm", "h200": "h200-sxm", "b200": "b200"}
MODELS = {"llama3.3-70b": "llama-3.3-70b", "llama3.1-8b": "llama-3.1-8b", "llama3.1-405b": "llama-3.1-405b"}
PATTERN = re.compile(r"trtllm-perf-(?P<model>llama[\d.]+-\d+b)-(?P<hw>[a-z0-9]+)-tp(?P<tp>\d+)-(?P<inp>\d+)-(?P<out>\d+)$")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from cosim.cli.common import build_scenario
    from cosim.engines.estimate import estimate

    rows = yaml.safe_load(DATA.read_text())["records"]
    print(f"{'row':50s} {'batch':>6s} {'predicted':>10s} {'measured':>10s} {'error':>8s}  bottleneck")
    errors = []
    for r in rows:
        m = PATTERN.match(r["id"])
        if not m or r.get("reliability") != "high":
            continue
        hw, model = HW.get(m["hw"]), MODELS.get(m["model"])
        precision = "fp8" if "fp8" in str(r.get("precision")) else "fp4" if "fp4" in str(r.get("precision")) else None
        if hw is None or model is None or precision is None:
            print(f"{r['id']:50s} skipped (hardware/model/precision not mapped)")
            continue
        tp = int(m["tp"])
        sc = build_scenario(phase="generate", batch=1, input_len=int(m["inp"]), output_len=int(m["out"]),
                            precision=precision, tp=tp)
        try:
            res = estimate(hw, model, sc, batch_max=True)
        except Exception as err:  # an unmapped spec is reported, not fatal
            print(f"{r['id']:50s} skipped ({err})")
            continue
        if not res.feasible:
            print(f"{r['id']:50s} infeasible: {res.reason}")
            continue
        pred = res.throughput_tokens_per_s
        meas = float(r["value"])
        err = pred / meas - 1.0
        errors.append(abs(err))
        print(f"{r['id']:50s} {res.batch:6d} {pred:10.0f} {meas:10.0f} {err:+8.1%}  {res.bottleneck}")
    if errors:
        errors.sort()
        med = errors[len(errors) // 2] if len(errors) % 2 else 0.5 * (errors[len(errors) // 2 - 1] + errors[len(errors) // 2])
        print(f"\n{len(errors)} rows: median |error| {med:.1%}, worst {max(errors):.1%} (uncalibrated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
