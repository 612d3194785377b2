"""The host time a Megatron-Core MoE training step pays per MoE layer per micro-batch, and its fit.

Hand-derived expectations: Qwen3-30B-A3B has 48 layers, all MoE. With pp = 2 each stage holds 24 of them;
a global batch of 64 over dp = 8 is 8 sequences per replica, in micro-batches of 2: m = 4. The 1F1B step is
(m + pp - 1) / m = 5 / 4 of the bubble-free one, so a host time t per MoE layer per micro-batch lengthens
the step by t x 4 x 24 x 5 / 4.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.cli.common import build_scenario
from cosim.engines import calibration
from cosim.engines.efficiency import params_for
from cosim.engines.estimate import estimate
from cosim.specs.loader import load_hardware
from cosim.validate.fit import fit_additive_time

HOST_S = 5e-3


def _step(workload: str, host_s: float, pp: int) -> float:
    sc = build_scenario(phase="train", batch=64, input_len=4096, output_len=1, precision="bf16", dp=8,
                        pp=pp, ep=8 if workload.startswith("qwen3") else 1, zero=1, microbatch=2)
    params = params_for(load_hardware("b200"), calibrated=False).with_overrides(moe_train_layer_overhead_s=host_s)
    res = estimate("b200", workload, sc, chips=8 * pp, params=params)
    assert res.feasible, res.reason
    return res.latency_s


def test_an_moe_step_pays_the_host_time_per_layer_and_micro_batch():
    added = _step("qwen3-30b-a3b", HOST_S, pp=2) - _step("qwen3-30b-a3b", 0.0, pp=2)
    assert added == pytest.approx(HOST_S * 4 * 24 * 5 / 4, rel=1e-9)


def test_without_a_pipeline_every_layer_is_on_the_one_stage():
    added = _step("qwen3-30b-a3b", HOST_S, pp=1) - _step("qwen3-30b-a3b", 0.0, pp=1)
    assert added == pytest.approx(HOST_S * 4 * 48, rel=1e-9)


def test_a_dense_model_pays_none():
    assert _step("llama-3.1-8b", HOST_S, pp=2) == pytest.approx(_step("llama-3.1-8b", 0.0, pp=2), rel=1e-12)


def test_the_fit_recovers_a_known_host_time():
    """Rows whose measured rate is what a step plus 4 ms per unit of slope gives: the fit finds 4 ms."""
    rng = np.random.default_rng(7)
    inv0 = rng.uniform(1e-4, 1e-3, 12)  # seconds per token without the host time
    slope = rng.uniform(1e-3, 2e-2, 12)  # seconds per token per second of host time per layer
    measured = 1.0 / (inv0 + 4e-3 * slope)
    assert fit_additive_time(inv0, slope, measured) == pytest.approx(4e-3, rel=1e-4)


def test_the_fit_stops_at_no_host_time_when_the_rows_run_faster():
    inv0 = np.array([1e-3, 2e-3])
    slope = np.array([1e-2, 1e-2])
    assert fit_additive_time(inv0, slope, 1.2 / inv0) == pytest.approx(0.0, abs=1e-6)


def test_the_stored_time_applies_only_on_the_generations_it_was_fitted_on(monkeypatch):
    stored = {"training": {"moe_layer_overhead_s": 0.006, "generations": ["nvidia-hopper"]}}
    monkeypatch.setattr(calibration, "load_calibration", lambda: stored)
    assert calibration.fitted_moe_train_layer_overhead_s("nvidia-hopper") == 0.006
    assert calibration.fitted_moe_train_layer_overhead_s("google-tpu") == 0.0  # a compiled stack: no eager host
    assert calibration.fitted_moe_train_layer_overhead_s(None) == 0.0


def test_the_stored_calibration_fits_the_time_on_the_moe_training_rows_only():
    """The MoE pre-training rows (and no other) fit the time, each with a leave-one-out error; the dense ones stay
    held out, but for a training stack's (cosim.validate.mapping.TRAINING_STACKS), which fit that stack's factor;
    left out one model at a time, the time refitted on the others is still a time within the bounds."""
    import yaml

    from cosim.engines.calibration import CALIBRATION_PATH
    from cosim.validate.fit import TRAIN_OVERHEAD_BOUNDS, _routes_experts
    from cosim.validate.mapping import TRAINING_STACKS
    from cosim.validate.runner import base_table

    cal = yaml.safe_load(CALIBRATION_PATH.read_text())
    table = base_table()
    training = table[(table["metric"] == "training_tokens_per_s_per_gpu") & table["reliability"].isin(["high", "medium"])]
    moe = training["workload"].map(_routes_experts)
    fitted = set(cal["training"]["rows"])
    assert fitted == set(training.loc[moe, "id"]) and len(fitted) == 35
    stack_rows = {rid for stack in TRAINING_STACKS for rid in cal["stacks"][stack]["rows"]}
    assert set(training.loc[~moe, "id"]) - stack_rows <= set(cal["held_out"]["rows"])
    assert not fitted & set(cal["held_out"]["rows"]) and not fitted & stack_rows
    assert not stack_rows & set(cal["held_out"]["rows"])
    assert TRAIN_OVERHEAD_BOUNDS[0] < cal["training"]["moe_layer_overhead_s"] < TRAIN_OVERHEAD_BOUNDS[1]
    assert set(cal["training"]["generations"]) <= {"nvidia-hopper", "nvidia-blackwell"}
    assert all(np.isfinite(cal["loo_errors"][rid]) for rid in fitted)
    by_model = cal["training"]["leave_one_model_out"]
    assert sum(v["rows"] for v in by_model.values()) == len(fitted)
    assert all(TRAIN_OVERHEAD_BOUNDS[0] <= v["time_without_s"] <= TRAIN_OVERHEAD_BOUNDS[1] for v in by_model.values())


TRAIN_ARGS = ["estimate", "--hardware", "b200", "--chips", "8", "--workload", "qwen3-30b-a3b", "--phase", "train",
              "--batch", "64", "--input-len", "4096", "--dp", "8", "--ep", "8", "--zero", "1", "--microbatch", "2",
              "--precision", "bf16", "--format", "json"]


def _cli_latency(capsys, *extra: str) -> float:
    import json

    from cosim.cli.main import main

    assert main(TRAIN_ARGS + list(extra)) == 0
    return json.loads(capsys.readouterr().out)["latency_s"]


def test_the_cli_sets_the_host_time(capsys):
    """--moe-host-ms 5 adds 5 ms x 4 micro-batches x 48 MoE layers to the step of --moe-host-ms 0 (no pipeline)."""
    assert _cli_latency(capsys, "--moe-host-ms", "5") - _cli_latency(capsys, "--moe-host-ms", "0") == pytest.approx(
        5e-3 * 4 * 48, rel=1e-9)


@pytest.mark.parametrize("extra", [["--moe-host-ms", "-1"], ["--moe-host-ms", "nan"],
                                   ["--moe-host-ms", "1", "--mapping", "auto"]])
def test_a_bad_host_time_is_exit_two_one_line(capsys, extra):
    from cosim.cli.main import main

    assert main(TRAIN_ARGS + extra) == 2
    err = capsys.readouterr().err.strip()
    assert "--moe-host-ms" in err and len(err.splitlines()) == 1
