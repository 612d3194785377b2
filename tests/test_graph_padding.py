"""Generation-only steps replayed as CUDA graphs pad their batch to a captured size (cosim.engines.graph_padding)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.api import estimate
from cosim.cli.common import build_scenario
from cosim.engines import eager, graph_padding
from cosim.specs.loader import load_workload
from cosim.validate import trtllm_bench

TABLE_SIZES = trtllm_bench.CUDA_GRAPH_BATCH_SIZES


def _sc(sizes=None, **kw):
    base = dict(phase="generate", batch=768, input_len=1024, output_len=1024, precision="fp8",
                chunked_prefill=True)
    return build_scenario(**(base | kw)).model_copy(update={"cuda_graph_batch_sizes": sizes})


def test_captured_sizes_follow_the_engine_limits():
    # TensorRT-LLM keeps the listed sizes within both the max batch size and the token budget
    assert trtllm_bench.captured_graph_sizes(640, 2048)[-1] == 512
    assert trtllm_bench.captured_graph_sizes(2048, 8192)[-1] == 2048
    assert trtllm_bench.captured_graph_sizes(4096, 2048)[-1] == 2048  # the budget caps it
    assert trtllm_bench.captured_graph_sizes(384, 2048) == (1, 2, 4, 8, 16, 32, 64, 128, 256, 384)


def test_padded_batch_by_hand():
    sizes = trtllm_bench.captured_graph_sizes(2048, 8192)
    # 3,000 sequences over 4 attention-DP ranks: 750 a rank replay the 1,024 graph, 274 dummies each
    sc = _sc(sizes, batch=3000, dp=4, ep=4)
    assert graph_padding.graph_batch(sc) == 1024
    assert graph_padding.padded_rows(sc) == 274
    # 384 a rank is a captured size: no padding
    assert graph_padding.padded_rows(_sc(sizes, batch=1536, dp=4, ep=4)) == 0
    # above the largest captured size the step runs eagerly, unpadded
    small = trtllm_bench.captured_graph_sizes(640, 2048)
    assert graph_padding.graph_batch(_sc(small, batch=554)) is None
    assert graph_padding.padded_rows(_sc(small, batch=554)) == 0
    # no captured sizes (another engine): nothing to pad
    assert graph_padding.padded_rows(_sc(None, batch=750)) == 0


def test_padding_costs_the_per_token_work_of_the_dummy_rows():
    """Llama-3.1-8B FP8 on an H200 at 768 sequences, 128/1,024: 0.75 prompts arrive a step, so a share
    exp(-0.75) of the steps carries none and replays the 1,024 graph. Dummy rows cost the per-token ops
    (weights already streamed: compute-bound at this batch), not attention and not the host's per-sequence
    work: the run's extra time per step is 0.25 x the difference of two decode steps (1,024 and 768
    sequences) at a one-token context, where attention is nil, less the 256 sequences' host work."""
    sizes = TABLE_SIZES
    base = _sc(None, batch=768, input_len=128, output_len=1024)
    padded = _sc(sizes, batch=768, input_len=128, output_len=1024)
    share = 1 - eager.prompt_step_fraction(load_workload("llama-3.1-8b"), base)
    assert share == pytest.approx(math.exp(-0.75))
    a = estimate("h200-sxm", "llama-3.1-8b", base, chips=1)
    b = estimate("h200-sxm", "llama-3.1-8b", padded, chips=1)
    assert a.feasible

    def step(batch):
        sc = build_scenario(phase="decode", batch=batch, input_len=1, precision="fp8")
        return estimate("h200-sxm", "llama-3.1-8b", sc, chips=1).step_time_s

    from cosim.engines.efficiency import params_for
    from cosim.specs.loader import load_hardware

    # a decode step also pays host work per real sequence; the dummy rows of a replayed graph do not
    host = 256 * params_for(load_hardware("h200-sxm")).per_sequence_overhead_s
    expected = share * (step(1024) - step(768) - host)
    assert expected > 0.02 * a.tpot_s  # the premise: padding 768 to 1,024 is not free
    assert b.tpot_s - a.tpot_s == pytest.approx(expected, rel=0.05)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 3000), output_len=st.integers(16, 2048))
def test_padding_never_speeds_a_run_up(batch, output_len):
    a = estimate("h200-sxm", "qwen3-30b-a3b", _sc(None, batch=batch, output_len=output_len), chips=1)
    b = estimate("h200-sxm", "qwen3-30b-a3b", _sc(TABLE_SIZES, batch=batch, output_len=output_len), chips=1)
    assert b.tpot_s >= a.tpot_s * (1 - 1e-12)
    if graph_padding.padded_rows(_sc(TABLE_SIZES, batch=batch)) == 0:
        assert b.tpot_s == pytest.approx(a.tpot_s, rel=1e-12)


def test_trtllm_bench_rows_carry_their_engine_limits():
    """gpt-oss-120b's MXFP4 experts are outside trtllm-bench's tuned quantisations, so its engine takes
    BuildConfig's 2,048 sequences and 8,192 tokens: graphs up to 2,048."""
    from cosim.validate.predict import _trtllm_bench_steps
    from cosim.validate.runner import query_for

    q = query_for("trtllm-perf2-gpt-oss-120b-h100-dep4-1000-1000")
    steps = _trtllm_bench_steps(q, 1000, 1000)
    assert steps["cuda_graph_batch_sizes"][-1] == 2048
    assert _trtllm_bench_steps(query_for("mlperf-v5.1-b200x8-deepseek-r1-offline"), 1000, 1000) == {}
    # the DeepSeek-R1 blog's runs state their limits and pad "up to" them: not the tables' list
    assert _trtllm_bench_steps(query_for("trtllm-dsr1-maxtput-b200x8-fp8kv"), 1024, 2048) == {}


def test_estimate_cli_pads_with_the_stated_sizes(capsys):
    """`cosim estimate --cuda-graph-sizes` prices the padding; a malformed list is one readable error."""
    import json

    from cosim.cli.main import main

    args = ["estimate", "--hardware", "h200-sxm", "--workload", "llama-3.1-8b", "--phase", "generate",
            "--batch", "768", "--input-len", "128", "--output-len", "1024", "--precision", "fp8",
            "--chunked-prefill", "--format", "json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)["tpot_s"]
    assert main(args + ["--cuda-graph-sizes", "512,1024"]) == 0
    padded = json.loads(capsys.readouterr().out)["tpot_s"]
    expected = estimate("h200-sxm", "llama-3.1-8b", _sc((512, 1024), batch=768, input_len=128, output_len=1024),
                        chips=1).tpot_s
    assert padded > plain and padded == pytest.approx(expected, rel=1e-12)
    assert main(args + ["--cuda-graph-sizes", "512,x"]) == 2
    err = capsys.readouterr().err
    assert "--cuda-graph-sizes" in err and "Traceback" not in err


@pytest.mark.parametrize("reference", [False, True])
def test_serving_simulator_pads_decode_iterations(reference):
    """The serving simulator on a closed-form step time (overhead A, B per token, C per cached token read,
    D per causal pair): a lone request's decode iterations run their per-token part at the next captured
    size (4 for one sequence) when the engine pads, A + 4 B + C (L + OUT / 2) per output token, while its
    prefill iteration is untouched; above the largest captured size nothing is padded."""
    from dataclasses import replace

    import numpy as np

    from cosim.errors import CosimInputError
    from cosim.serving.metrics import latency_arrays
    from cosim.serving.simulator import RequestSet, ServingConfig, simulate
    from cosim.serving.steptime import AffineStepTime

    A, B, C, D = 0.01, 1e-4, 1e-6, 1e-9
    L, OUT = 300, 40
    table = AffineStepTime(A, B, C, D).table()
    one = RequestSet(np.array([0.0]), np.array([L]), np.array([OUT]))
    cfg = ServingConfig(kv_capacity_tokens=100_000, scheduler="continuous")

    def run(t):
        return latency_arrays(simulate(one, t, cfg, reference=reference))

    plain, padded = run(table), run(replace(table, graph_batch_sizes=(4.0, 8.0)))
    assert plain["tpot"][0] == pytest.approx(A + B + C * (L + OUT / 2), rel=1e-12)
    assert padded["tpot"][0] == pytest.approx(A + 4 * B + C * (L + OUT / 2), rel=1e-12)
    assert padded["ttft"][0] == pytest.approx(plain["ttft"][0], rel=1e-12)
    two = RequestSet(np.zeros(2), np.array([L, L]), np.array([OUT, OUT]))
    small = replace(table, graph_batch_sizes=(1.0,))  # two decoding sequences: above the largest, eager
    assert latency_arrays(simulate(two, small, cfg, reference=reference))["tpot"][0] == pytest.approx(
        latency_arrays(simulate(two, table, cfg, reference=reference))["tpot"][0], rel=1e-12)
    assert replace(table, graph_batch_sizes=(4.0,)).step_time(3, 0.0) == pytest.approx(A + 4 * B, rel=1e-12)
    with pytest.raises(CosimInputError, match="graph_batch_sizes"):
        replace(table, graph_batch_sizes=(8.0, 4.0))


def test_serve_carries_the_sizes_into_its_step_table():
    """`cosim serve --cuda-graph-sizes` reaches the replica's step table (the scenario's sizes)."""
    from cosim.serving.adapter import replica_model
    from cosim.specs.loader import load_hardware

    sc = build_scenario(phase="generate", batch=1, input_len=1, output_len=1, precision="fp8").model_copy(
        update={"cuda_graph_batch_sizes": (64, 8, 256, 64)})  # unordered, repeated: as the API may pass them
    rm = replica_model(load_hardware("h100-sxm"), load_workload("llama-3.1-8b"), sc, max_batched_tokens=2048,
                       max_context=4096, memory_utilization=0.9)
    assert rm.table.graph_batch_sizes == (8.0, 64.0, 256.0)


def test_decode_steps_all_replay_the_padded_graph():
    """A decode step of 300 sequences with graphs at 256 and 512 runs 512 rows through every op but attention:
    its time is the 300-sequence step plus the difference of the 512- and 300-sequence steps at a one-token
    context (where attention is nil), less the 212 dummies' host work, which graphs do not pay."""
    from cosim.engines.efficiency import params_for
    from cosim.specs.loader import load_hardware

    def dec(batch, ctx, sizes=None):
        sc = build_scenario(phase="decode", batch=batch, input_len=ctx, precision="fp8").model_copy(
            update={"cuda_graph_batch_sizes": sizes})
        return estimate("h200-sxm", "llama-3.1-8b", sc, chips=1).step_time_s

    host = 212 * params_for(load_hardware("h200-sxm")).per_sequence_overhead_s
    expected = dec(300, 2048) + dec(512, 1) - dec(300, 1) - host
    assert dec(300, 2048, (256, 512)) == pytest.approx(expected, rel=2e-3)
    assert dec(256, 2048, (256, 512)) == pytest.approx(dec(256, 2048), rel=1e-12)  # a captured size: no dummies


def test_a_static_batch_pads_every_decode_step_and_not_its_prefill():
    """Without chunked prefill a generate run prefills its batch, then every step decodes only: all of them
    replay the padded graph, the prefill (TTFT) does not."""
    base = dict(phase="generate", batch=300, input_len=512, output_len=256, precision="fp8")
    plain = estimate("h200-sxm", "llama-3.1-8b", build_scenario(**base), chips=1)
    padded = estimate("h200-sxm", "llama-3.1-8b", build_scenario(**base).model_copy(
        update={"cuda_graph_batch_sizes": (256, 512)}), chips=1)
    dec = build_scenario(phase="decode", batch=300, input_len=512, precision="fp8")
    step_gap = estimate("h200-sxm", "llama-3.1-8b", dec.model_copy(update={"cuda_graph_batch_sizes": (256, 512)}),
                        chips=1).step_time_s - estimate("h200-sxm", "llama-3.1-8b", dec, chips=1).step_time_s
    assert padded.ttft_s == pytest.approx(plain.ttft_s, rel=1e-12)
    assert step_gap > 0 and padded.tpot_s - plain.tpot_s == pytest.approx(step_gap, rel=1e-6)
