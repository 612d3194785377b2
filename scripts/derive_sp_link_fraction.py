"""Derive `video_sp_link_fraction` (cosim/data/efficiency/nvidia-gpu.yaml) from ML.ENERGY's text-to-video runs.

At one GPU count, xDiT's Ulysses x ring layouts of the same model and batch differ only in the bytes their
sequence-parallel exchange moves, so the measured time increments over the all-Ulysses layout price those
bytes. This script finds the fraction of the link bandwidth at which cosim's increments match the measured
ones (least squares, 0.005 steps) for Wan2.1-T2V-14B at batch 1 on 8 GPUs, per chip, and prints both.

Run: .venv/bin/python scripts/derive_sp_link_fraction.py
"""

from __future__ import annotations

import numpy as np

from cosim.engines.calibration import apply_stack, calibrated_params, stack_scale
from cosim.specs.loader import load_hardware
from cosim.validate import predict
from cosim.validate.mapping import load_mapping
from cosim.validate.reference import load_config_rows
from cosim.validate.runner import query_for

LAYOUTS = ("u8r1", "u4r2", "u2r4", "u1r8")
MODEL = "wan-ai-wan2.1-t2v-14b-diffusers"


def _predicted(row_id: str, fraction: float, mapping) -> float:
    q = query_for(row_id)
    hw = load_hardware(q.hardware)
    params = apply_stack(calibrated_params(hw), stack_scale(q.stack, q.hardware, False))
    predict._VIDEO_CACHE.clear()
    value, reason = predict.predict(q, mapping, params.with_overrides(sp_link_fraction=fraction))
    if value is None:
        raise SystemExit(f"{row_id}: {reason}")
    return value


def main() -> None:
    mapping = load_mapping()
    measured = {r.id + "-time": r.values["batch_latency_s"] / r.values["batch"]
                for r in load_config_rows() if r.kind == "diffusion"}
    for gpu in ("h100", "b200"):
        ids = [f"mlenergy-cfg-{MODEL}-{gpu}x8-b1-{layout}-time" for layout in LAYOUTS]
        meas = np.array([measured[i] for i in ids])
        best = None
        for fraction in np.arange(0.05, 0.40, 0.005):
            pred = np.array([_predicted(i, fraction, mapping) for i in ids])
            sse = float(np.sum(((pred[1:] - pred[0]) - (meas[1:] - meas[0])) ** 2))
            if best is None or sse < best[0]:
                best = (sse, fraction, pred[1:] - pred[0])
        print(f"{gpu}: video_sp_link_fraction {best[1]:.3f}; increments over {LAYOUTS[0]} "
              f"cosim {np.round(best[2], 1).tolist()} s, measured {np.round(meas[1:] - meas[0], 1).tolist()} s")


if __name__ == "__main__":
    main()
