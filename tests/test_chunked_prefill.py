"""Continuous batching with chunked prefill: prompt chunks ride on the decode steps."""

import pytest

from cosim.api import estimate
from cosim.cli.common import build_scenario


def test_chunked_generate_is_output_len_steps_of_one_mixed_step():
    """Every step decodes the batch and carries its prompt share, so a request's first token comes after one
    step, it lives output_len steps, and the batch produces batch tokens per step."""
    sc = build_scenario(phase="generate", batch=32, input_len=512, output_len=128, precision="fp8",
                        chunked_prefill=True)
    r = estimate("h100-sxm", "llama-3.1-8b", sc, chips=1)
    assert r.feasible
    assert r.ttft_s == pytest.approx(r.tpot_s, rel=1e-12)
    assert r.latency_s == pytest.approx(128 * r.tpot_s, rel=1e-12)
    assert r.throughput_tokens_per_s == pytest.approx(32 / r.tpot_s, rel=1e-9)


def test_chunked_steps_do_the_same_work_as_separate_prefill_and_decode():
    """Chunking moves the prompt work into the decode steps; it neither adds nor drops FLOPs beyond the one
    decode step the separate schedule skips (its first token comes from the prefill) and the logits of the
    prompt tokens, which the chunked step does not compute."""
    kw = dict(phase="generate", batch=16, input_len=256, output_len=64, precision="bf16")
    sep = estimate("h100-sxm", "llama-3.1-8b", build_scenario(**kw), chips=1)
    chk = estimate("h100-sxm", "llama-3.1-8b", build_scenario(**kw, chunked_prefill=True), chips=1)
    total = lambda r: sum(r.flops_by_precision.values())  # noqa: E731
    # 16 x 64 decode tokens + 16 x 256 prompt tokens at ~2 x 8e9 FLOPs each either way: within one decode step
    assert total(chk) == pytest.approx(total(sep), rel=0.03)


def test_a_step_token_budget_caps_the_running_batch():
    """NVIDIA's v5.0 H200 config runs max_num_tokens 1536: a step carries batch (1 + ISL / OSL) tokens, so
    with ISL 352 and OSL 294 at most 1536 x 294 // 646 = 699 sequences decode, below the ~758 the KV holds."""
    from cosim.engines.calibration import calibrated_params
    from cosim.specs.loader import load_hardware
    from cosim.validate.mapping import lengths, load_mapping
    from cosim.validate.predict import engine_run
    from cosim.validate.runner import query_for

    q = query_for("mlperf-v5.0-h200x8-llama2-offline")
    assert q.max_num_tokens == 1536
    inp, out = lengths(q, load_mapping())
    assert (inp, out) == (352, 294)
    res = engine_run(q, inp, out, 1, calibrated_params(load_hardware(q.hardware)), 4096)
    assert res.batch == 1536 * 294 // (352 + 294) == 699


def test_estimate_cli_chunked_prefill_flag(capsys):
    import json

    from cosim.cli.main import main

    args = ["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--phase", "generate",
            "--batch", "16", "--input-len", "256", "--output-len", "64", "--format", "json"]
    assert main(args + ["--chunked-prefill"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ttft_s"] == pytest.approx(d["tpot_s"]) and d["latency_s"] == pytest.approx(64 * d["tpot_s"])
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["ttft_s"] > d["ttft_s"]  # one prefill of all 16 prompts first



def test_chunked_steps_split_the_prompt_chunk_over_data_parallel_ranks():
    """With attention data parallelism every rank carries its share of the prompt chunk: 8 sequences at
    ISL 100 / OSL 7 carry 8 x 100 / 7 = 114.3 prompt tokens a step, rounded up to 116 so the 4 ranks each
    take 29, and each rank's per-token GEMMs see (8 + 116) / 4 = 31 rows (the step no longer fails on a
    chunk the ranks cannot split)."""
    from cosim.graph.build import mixed_step_graph
    from cosim.graph.optable import OpKind
    from cosim.specs.loader import load_workload

    sc = build_scenario(phase="generate", batch=8, input_len=100, output_len=7, dp=4, chunked_prefill=True)
    table = mixed_step_graph(load_workload("llama-3.1-8b"), sc, 104)
    gemm_rows = {int(m) for m, k in zip(table.m, table.kind, strict=True) if k == OpKind.GEMM}
    assert 31 in gemm_rows
    r = estimate("h100-sxm", "llama-3.1-8b", sc, chips=4)
    assert r.feasible and r.throughput_tokens_per_s == pytest.approx(8 / r.tpot_s, rel=1e-9)
