"""`cosim estimate`: JSON contract, table breakdown, bad input, infeasible mappings."""

from __future__ import annotations

import json

from cosim.cli.main import main
from cosim.engines.estimate import CONTRACT_KEYS

BASE = ["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b"]


def test_json_has_exactly_the_contract_keys(capsys):
    assert main(BASE + ["--phase", "decode", "--batch", "16", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert tuple(data) == CONTRACT_KEYS
    assert data["feasible"] is True and data["bottleneck"] == "memory"
    assert data["ttft_s"] is None and data["seconds_per_video"] is None
    assert abs(data["throughput_tokens_per_s"] * data["tpot_s"] - 16) < 1e-9


def test_generate_and_batch_max(capsys):
    assert main(BASE + ["--phase", "generate", "--batch", "max", "--input-len", "512", "--output-len", "64",
                        "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batch"] > 1 and data["ttft_s"] > 0 and data["tpot_s"] > 0
    assert data["latency_s"] > data["ttft_s"]


def test_table_adds_the_breakdown(capsys):
    assert main(BASE + ["--phase", "prefill", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "per-op breakdown" in out and "mlp.gate_up_proj" in out and "achieved_flops_per_s" in out


def test_infeasible_is_exit_zero_with_reason(capsys):
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-405b", "--phase", "decode",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["feasible"] is False and "does not fit" in data["reason"]


def test_bad_input_is_exit_two_one_line(capsys):
    for args in (["--phase", "nope"], ["--batch", "0"], ["--tp", "3"], ["--chips", "3", "--tp", "2"],
                 ["--format", "csv"], ["--phase", "video"]):
        assert main(BASE + args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err


def test_cycle_mode_is_accepted_or_says_not_available(capsys):
    code = main(BASE + ["--phase", "decode", "--mode", "cycle", "--format", "json"])
    try:
        from cosim.engines.cycle import gemm_time_s  # noqa: F401
    except Exception:
        assert code == 2 and "not available" in capsys.readouterr().err
    else:
        assert code == 0


def _prefill_s(capsys, *extra):
    args = ["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--phase", "prefill", "--batch", "8",
            "--input-len", "2048", "--format", "json", *extra]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)["latency_s"]


def test_stack_flag_applies_the_fitted_kernel_efficiency(capsys):
    from cosim.engines.calibration import stack_scale

    tuned = _prefill_s(capsys)
    vllm = _prefill_s(capsys, "--stack", "vllm")
    f = stack_scale("vllm")
    # kernels run at f x the tuned fractions of peak; launches and host work do not scale
    assert tuned <= vllm <= tuned / f * 1.000001
    if f < 0.99:
        assert vllm > tuned * (1 + (1 / f - 1) / 2)  # a compute-bound prefill slows by most of 1 / f
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--stack", "sglang"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--stack" in err


def test_stack_flag_takes_the_stacks_moe_factor_for_an_moe_model(capsys):
    """vLLM has a second fitted factor for MoE models (its fused-MoE kernels): `--stack vllm` on Qwen3-30B-A3B
    slows a compute-bound prefill by most of 1 / f_moe, more than the dense factor alone would."""
    from cosim.engines.calibration import stack_scale

    f_dense, f_moe = stack_scale("vllm", "h100-sxm"), stack_scale("vllm", "h100-sxm", moe=True)
    args = ["estimate", "--hardware", "h100-sxm", "--workload", "qwen3-30b-a3b", "--phase", "prefill", "--batch",
            "16", "--input-len", "4096", "--format", "json"]
    assert main(args) == 0
    tuned = json.loads(capsys.readouterr().out)["latency_s"]
    assert main([*args, "--stack", "vllm"]) == 0
    vllm = json.loads(capsys.readouterr().out)["latency_s"]
    assert tuned <= vllm <= tuned / f_moe * 1.000001
    if f_moe < f_dense < 1.0:
        assert vllm > tuned / f_dense * 1.01  # beyond what the dense factor could cause


def test_missing_or_unknown_option_is_exit_two_one_line(capsys):
    # Typer >= 0.17 raises its own (vendored click) usage errors; they must not surface as internal failures
    assert main(["serve", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--input-len" in err and "internal failure" not in err
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--bogus" in err


def test_output_len_cv_slows_decode_only_and_rejects_negatives(capsys):
    args = BASE + ["--phase", "generate", "--batch", "64", "--input-len", "2000", "--output-len", "500",
                   "--precision", "fp8", "--format", "json"]
    assert main(args) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert main(args + ["--output-len-cv", "1"]) == 0
    spread = json.loads(capsys.readouterr().out)
    assert spread["ttft_s"] == fixed["ttft_s"]  # the same prompts
    assert spread["tpot_s"] > fixed["tpot_s"]  # contexts reach 2000 + 1000, not 2000 + 500
    assert main(args + ["--output-len-cv", "-0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--output-len-cv" in err[0]


def test_kv_precision_flag_sets_the_cache_bytes(capsys):
    """--kv-precision bf16 stores 2 bytes per KV element instead of fp8's 1: the footprint grows by
    batch x context x (layers x KV heads x head_dim x 2 for K and V) bytes, here 32 x 8 x 128 x 2 = 65,536
    elements per token for Llama-3.1-8B, at batch 8 and a 2,048-token context."""
    args = BASE + ["--phase", "decode", "--batch", "8", "--input-len", "2048", "--precision", "fp8",
                   "--format", "json"]
    assert main(args) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(args + ["--kv-precision", "fp8"]) == 0
    explicit_fp8 = json.loads(capsys.readouterr().out)
    assert main(args + ["--kv-precision", "bf16"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    assert explicit_fp8["memory_bytes_per_chip"] == default["memory_bytes_per_chip"]
    grown = bf16["memory_bytes_per_chip"] - default["memory_bytes_per_chip"]
    assert abs(grown - 8 * 2048 * 65536) / (8 * 2048 * 65536) < 0.01
    assert bf16["tpot_s"] > default["tpot_s"]  # twice the KV bytes to stream each step


def test_kv_precision_rejects_a_non_kv_dtype(capsys):
    assert main(BASE + ["--kv-precision", "fp4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--kv-precision" in err and "\n" not in err


def test_default_kv_precision_is_one_rule_for_every_weight_precision():
    """CLI, sweeps and optimizer share one default: the weights' precision where a cache can hold it,
    fp8 under 8-bit-or-narrower formats, bf16 for tf32."""
    from cosim.cli.common import PRECISION_CHOICES
    from cosim.specs.scenario import KV_PRECISION_CHOICES, default_kv_precision

    expected = {"fp32": "fp32", "tf32": "bf16", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp6": "fp8",
                "fp4": "fp8", "int8": "fp8", "int4": "fp8"}
    assert {p: default_kv_precision(p) for p in PRECISION_CHOICES} == expected
    assert set(expected.values()) <= set(KV_PRECISION_CHOICES)


def test_a_context_beyond_the_models_trained_length_is_stated_on_stderr(capsys):
    """Llama 2 7B was trained to 4,096 positions: a decode at 100,000 cached tokens is still priced (the JSON
    is unchanged), with one note on stderr naming the limit; within it, nothing is said."""
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-2-7b", "--input-len", "100000",
                 "--format", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["feasible"] is True
    assert "max_position_embeddings (4,096)" in out.err and "100,001 tokens" in out.err
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-2-7b", "--input-len", "4000",
                 "--format", "json"]) == 0
    assert "max_position_embeddings" not in capsys.readouterr().err


def test_tp_beyond_the_heads_is_an_infeasible_result_with_its_reason(capsys):
    """Mistral 7B has 32 attention heads: TP 64 cannot split them at any size, a result with feasible false
    and the reason (exit 0, the JSON contract's keys); TP 3, which does not divide 32 but is within it, stays
    bad input (exit 2)."""
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "mistral-7b", "--tp", "64", "--chips", "64",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert tuple(data) == CONTRACT_KEYS
    assert data["feasible"] is False and "exceeds the model's 32 attention heads" in data["reason"]
    assert data["tpot_s"] is None
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "mistral-7b", "--tp", "3", "--chips", "3"]) == 2
