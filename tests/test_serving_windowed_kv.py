"""Sliding-window models in the serving simulator: a decoding sequence's windowed layers read at most the
window, and the decode-attention table is sampled so that no sequence's window cuts its reads short.

Before session 35 the table was sampled as one sequence at the step's total cached tokens, so for a windowed
model (Mistral 7B, gpt-oss, Gemma 3, Llama 4) a step of many sequences read only one window's worth.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cosim.cli.common import build_scenario
from cosim.serving.adapter import engine_table, kv_window
from cosim.serving.kernel import kv_read_tokens
from cosim.serving.simulator import RequestSet, ServingConfig, simulate
from cosim.serving.steptime import AffineStepTime
from cosim.specs.loader import load_hardware, load_workload


@pytest.mark.parametrize(("context", "window", "share", "expected"), [
    (1500.0, 0.0, 0.0, 1500.0),      # no window: the whole context
    (1500.0, 4096.0, 1.0, 1500.0),   # within the window: the whole context
    (10000.0, 4096.0, 1.0, 4096.0),  # every layer windowed: the window
    (1000.0, 128.0, 0.5, 564.0),     # gpt-oss: half the layers at 128, half at 1,000
])
def test_kv_read_tokens_closed_form(context, window, share, expected):
    assert kv_read_tokens(context, window, share) == pytest.approx(expected, rel=1e-12)


def test_window_and_share_from_the_workload_specs():
    assert kv_window(load_workload("mistral-7b")) == (4096.0, 1.0)  # 32 of 32 layers, 4,096 tokens
    assert kv_window(load_workload("gpt-oss-120b")) == (128.0, 0.5)  # 18 of 36 layers, 128 tokens
    assert kv_window(load_workload("llama-3.1-8b")) == (0.0, 0.0)


def test_mistral_decode_step_reads_every_sequences_cache():
    """130 sequences at 1,500 tokens (within Mistral's 4,096-token window) read 130 x 1,500 x 65,536 bytes
    of FP8 KV cache a step (32 layers x 8 KV heads x 128 x 2 x 1 byte per token): at the H100's 3.35 TB/s that
    is at least 3.8 ms, which the table's decode-attention part must carry."""
    hw = load_hardware("h100-sxm")
    table = engine_table(hw, load_workload("mistral-7b"), build_scenario(phase="generate", precision="fp8"),
                         8192, 600_000)
    per_token = 32 * 8 * 128 * 2 * 1
    assert per_token == 65_536
    floor_s = 130 * 1500 * per_token / 3.35e12
    attention_s = table.decode_time(130, 1500) - table.decode_time(130, 1)
    assert attention_s >= floor_s
    assert attention_s < 3 * floor_s  # and memory-bound, not beyond it


def test_the_kernel_counts_windowed_reads_as_its_reference_does():
    # every step costs 1 ms plus 1 us per cached token read: one request of 50 prompt tokens and 400 outputs
    # against a 100-token window on all layers reads min(context, 100) tokens a step
    table = dataclasses.replace(AffineStepTime(1e-3, 0.0, 1e-6, 0.0).table(), kv_window_tokens=100.0,
                                kv_window_share=1.0)
    req = RequestSet(np.array([0.0]), np.array([50]), np.array([400]))
    cfg = ServingConfig(kv_capacity_tokens=10_000)
    fast = simulate(req, table, cfg)
    ref = simulate(req, table, cfg, reference=True)
    np.testing.assert_array_equal(fast.finish_s, ref.finish_s)
    # decode steps k = 1..399 read min(50 + k, 100) tokens: 50 steps below the window, then 349 at 100
    reads = sum(min(50 + k, 100) for k in range(1, 400))
    first = fast.first_token_s[0]
    assert fast.finish_s[0] - first == pytest.approx(399 * 1e-3 + 1e-6 * reads, rel=1e-6)


def test_serve_flag_kv_read_per_query_head_slows_a_gqa_models_decode(capsys):
    """`serve --kv-read-per-query-head` reaches the step-time tables: Mistral 7B (4 query heads per KV head)
    decodes more slowly when every query head reads its own copy of the cache."""
    import json

    from cosim.cli.main import main

    def tpot(*flag):
        assert main(["serve", "--hardware", "h100-sxm", "--workload", "mistral-7b", "--precision", "fp8",
                     "--offline", "--num-requests", "64", "--input-len", "1024", "--output-len", "256",
                     "--format", "json", *flag]) == 0
        return json.loads(capsys.readouterr().out)["tpot_p50_s"]

    assert tpot("--kv-read-per-query-head") > 1.3 * tpot()
