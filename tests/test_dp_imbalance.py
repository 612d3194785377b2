"""The step stretch of a balanced attention-DP run whose requests vary in length.

Expected values come from the definition and the published figures, not from the code: the stretch is
elapsed over balanced time, which NVIDIA's ADP-balance blog gives as SOL / actual = 37,912 / 34,140 tokens/s;
with chunked prefill a run's latency is output_len x step, so stretching every step by s divides the
throughput by s exactly.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.common import build_scenario
from cosim.cli.main import main
from cosim.engines.efficiency import load_engine_defaults, params_for
from cosim.engines.estimate import estimate
from cosim.errors import CosimInputError
from cosim.specs.loader import load_hardware
from cosim.validate.mapping import load_mapping
from cosim.validate.predict import _dp_imbalance

PARAMS = params_for(load_hardware("b200"), calibrated=False)


def _tput(workload: str, imbalance: float, dp: int = 8, chunked: bool = True) -> float:
    sc = build_scenario(phase="generate", batch=512, input_len=800, output_len=2000, precision="fp4", dp=dp,
                        ep=dp if workload.startswith("deepseek") else 1, chunked_prefill=chunked,
                        dp_prompt_balance=True, dp_imbalance=imbalance)
    res = estimate("b200", workload, sc, chips=dp, params=PARAMS)
    assert res.feasible, res.reason
    return res.throughput_tokens_per_s


def test_the_stored_stretch_is_the_blogs_sol_over_actual():
    assert load_engine_defaults()["adp_balance_step_stretch"]["value"] == pytest.approx(37912 / 34140, abs=1e-4)


def test_a_stretched_step_divides_a_chunked_runs_throughput_exactly():
    assert _tput("deepseek-r1", 1.25) == pytest.approx(_tput("deepseek-r1", 1.0) / 1.25, rel=1e-9)


def test_ranks_that_do_not_share_steps_are_not_stretched():
    # dense replicas never wait for each other; one rank has no one to wait for
    assert _tput("llama-3.1-8b", 1.5) == pytest.approx(_tput("llama-3.1-8b", 1.0), rel=1e-12)
    assert _tput("qwen3-30b-a3b", 1.5, dp=1) == pytest.approx(_tput("qwen3-30b-a3b", 1.0, dp=1), rel=1e-12)


@settings(max_examples=8, deadline=None)
@given(st.floats(min_value=1.0, max_value=2.0), st.floats(min_value=0.0, max_value=1.0))
def test_more_imbalance_never_raises_throughput(low, extra):
    assert _tput("deepseek-r1", low + extra, chunked=False) <= _tput("deepseek-r1", low, chunked=False) * (1 + 1e-12)


def test_only_balanced_dataset_runs_take_the_stretch():
    rows = load_mapping().rows
    stretch = load_engine_defaults()["adp_balance_step_stretch"]["value"]
    # MLPerf's DeepSeek-R1 task mix (a dataset profile: lengths vary) under TensorRT-LLM's ADP balancing
    assert _dp_imbalance(rows["mlperf-v6.1-gb200nvl72-deepseek-r1-offline"]) == stretch
    # trtllm-bench's synthetic fixed lengths keep the ranks in step
    assert _dp_imbalance(rows["trtllm-perf2-deepseek-r1-b200-dep4-1024-1024"]) == 1.0
    # tensor-parallel attention has no ranks to balance
    assert _dp_imbalance(rows["mlperf-v5.1-h200x8-deepseek-r1-offline"]) == 1.0


@pytest.mark.parametrize("bad", [0.5, float("inf"), float("nan")])
def test_an_imbalance_below_one_is_an_input_error(bad):
    with pytest.raises(CosimInputError, match="--dp-imbalance"):
        build_scenario(phase="generate", dp=8, dp_imbalance=bad)


def test_the_cli_rejects_a_bad_imbalance_in_one_line(capsys):
    code = main(["estimate", "--hardware", "b200", "--workload", "deepseek-r1", "--phase", "generate", "--dp", "8",
                 "--dp-imbalance", "0.9"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--dp-imbalance" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
