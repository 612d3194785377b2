"""Prompt-carrying steps launched without CUDA graphs wait for the host (cosim.engines.eager)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.api import estimate
from cosim.cli.common import build_scenario
from cosim.engines import eager
from cosim.engines.efficiency import load_engine_defaults
from cosim.specs.loader import load_workload

HOST = float(load_engine_defaults()["eager_moe_layer_host_s"]["value"])


def _sc(**kw):
    base = dict(phase="generate", batch=256, input_len=1024, output_len=1024, precision="fp8",
                chunked_prefill=True, eager_prompt_steps=True)
    return build_scenario(**(base | kw))


def test_host_time_counts_the_moe_layers_only():
    # Qwen3-30B-A3B: 48 MoE layers; DeepSeek-R1: 61 layers, the first 3 dense; Llama: none
    assert eager.eager_host_s(load_workload("qwen3-30b-a3b"), _sc()) == pytest.approx(48 * HOST)
    assert eager.eager_host_s(load_workload("deepseek-r1"), _sc()) == pytest.approx(58 * HOST)
    assert eager.eager_host_s(load_workload("llama-3.1-8b"), _sc()) == 0.0


def test_prompt_step_fraction_by_hand():
    moe = load_workload("qwen3-30b-a3b")
    # one engine, 1000 running, 1000-token outputs: one prompt a step on average, Poisson: 1 - 1/e
    assert eager.prompt_step_fraction(moe, _sc(batch=1000, output_len=1000)) == pytest.approx(1 - math.exp(-1))
    # 4 attention-DP ranks share every step: 2000 running -> 2 prompts a step over the whole engine
    assert eager.prompt_step_fraction(moe, _sc(batch=2000, output_len=1000, dp=4, ep=4)) == \
        pytest.approx(1 - math.exp(-2))
    # balanced ranks take one prompt each in the same step: 2 prompts a step fill half the steps
    assert eager.prompt_step_fraction(moe, _sc(batch=2000, output_len=1000, dp=4, ep=4, dp_prompt_balance=True)) \
        == pytest.approx(0.5)


def test_eager_step_is_the_gpu_step_or_the_host_time_whichever_is_longer():
    """A small MoE model with few running sequences: the GPU step is far below 48 layers of host time, so
    the average step becomes gpu + f x (host - gpu) with f = 1 - exp(-batch / output_len)."""
    kw = dict(batch=64, input_len=256, output_len=64)
    off = estimate("b200", "qwen3-30b-a3b", _sc(eager_prompt_steps=False, **kw), chips=1)
    on = estimate("b200", "qwen3-30b-a3b", _sc(**kw), chips=1)
    host = 48 * HOST
    assert off.tpot_s < host  # the premise: host-bound
    f = 1 - math.exp(-64 / 64)
    assert on.tpot_s == pytest.approx(off.tpot_s + f * (host - off.tpot_s), rel=1e-9)
    assert on.throughput_tokens_per_s == pytest.approx(64 / on.tpot_s, rel=1e-9)


def test_dense_models_and_unchunked_runs_are_untouched():
    for wl, kw in (("llama-3.1-8b", {}), ("qwen3-30b-a3b", {"chunked_prefill": False})):
        a = estimate("h100-sxm", wl, _sc(eager_prompt_steps=False, **kw), chips=1)
        b = estimate("h100-sxm", wl, _sc(**kw), chips=1)
        assert b.latency_s == pytest.approx(a.latency_s, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4096), output_len=st.integers(1, 4096))
def test_eager_steps_never_speed_a_run_up(batch, output_len):
    moe = load_workload("qwen3-30b-a3b")
    sc = _sc(batch=batch, output_len=output_len)
    f = eager.prompt_step_fraction(moe, sc)
    assert 0.0 <= f <= 1.0
    for gpu in (1e-4, 0.01, 0.1):
        extra = float(eager.eager_extra_s(moe, sc, gpu))
        assert extra >= 0.0
        assert gpu + extra <= max(gpu, eager.eager_host_s(moe, sc)) + 1e-15


def test_serving_table_carries_the_host_floor_for_eager_stacks():
    """`cosim serve --stack trtllm-bench` simulates prompt iterations that wait for the host: the replica's
    step table carries 48 MoE layers x the per-layer host time as the floor; a dense model gets none."""
    from cosim.serving.adapter import replica_model
    from cosim.specs.loader import load_hardware

    hw = load_hardware("b200")
    for wl, floor in (("qwen3-30b-a3b", 48 * HOST), ("llama-3.1-8b", 0.0)):
        kw = dict(max_batched_tokens=2048, max_context=4096, memory_utilization=0.9)
        rm = replica_model(hw, load_workload(wl), _sc(batch=1), **kw)
        assert rm.table.prompt_step_floor_s == pytest.approx(floor)
        plain = replica_model(hw, load_workload(wl), _sc(batch=1, eager_prompt_steps=False), **kw)
        assert plain.table.prompt_step_floor_s == 0.0


def test_pipeline_stages_launch_every_layer_once_per_iteration():
    """pp stages each launch their layers/pp for each of pp micro-batches: an iteration's host time is all
    48 MoE layers, the same as without pipelining (it is compared with the interleaved iteration time)."""
    moe = load_workload("qwen3-30b-a3b")
    assert eager.eager_host_s(moe, _sc(pp=2)) == pytest.approx(eager.eager_host_s(moe, _sc()))
