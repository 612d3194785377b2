"""Checkpoints that quantise only the routed experts (gpt-oss: MXFP4 experts, BF16 elsewhere)."""

import pytest

from cosim.api import estimate
from cosim.cli.common import build_scenario
from cosim.engines.memory import footprint, inference_weight_bytes
from cosim.errors import CosimInputError
from cosim.graph.build import build_graph
from cosim.graph.optable import OpKind
from cosim.specs.hardware import PRECISIONS
from cosim.specs.loader import load_workload
from cosim.workloads.params import params_total

H = 2880
EXPERT = 3 * H * 2880  # SwiGLU gate, up, down of one gpt-oss expert
#: bytes of one MXFP4 weight: a 4-bit value plus its share of one 8-bit E8M0 scale per 32 values (OCP MX v1.0)
MXFP4 = 0.5 + 1.0 / 32.0


def _sc(**kw):
    base = dict(phase="decode", batch=64, input_len=1024, precision="fp4", activation_precision="fp8",
                dense_precision="bf16", kv_precision="fp8", fp4_format="mxfp4")
    return build_scenario(**(base | kw))


def test_weight_bytes_split_experts_from_the_rest_by_hand():
    """gpt-oss-20b on one chip: 24 layers x 32 experts at 4.25 bits (MXFP4), the other parameters at 16 bits."""
    model = load_workload("gpt-oss-20b")
    experts = 24 * 32 * EXPERT
    rest = params_total(model) - experts
    assert inference_weight_bytes(model, _sc()) == pytest.approx(experts * MXFP4 + rest * 2.0, rel=1e-12)
    assert footprint(model, _sc()).weights == pytest.approx(experts * MXFP4 + rest * 2.0, rel=1e-12)
    # NVFP4 keeps one 8-bit scale per 16 values: 4.5 bits a weight
    nv = _sc(fp4_format="nvfp4")
    assert inference_weight_bytes(model, nv) == pytest.approx(experts * 0.5625 + rest * 2.0, rel=1e-12)
    # expert parallelism over 4 ranks splits the experts only
    ep = _sc(dp=4, ep=4, batch=256)
    assert inference_weight_bytes(model, ep) == pytest.approx(experts / 4 * MXFP4 + rest * 2.0, rel=1e-12)
    # a dense model's weights are all outside the experts
    llama = load_workload("llama-3.1-8b")
    assert inference_weight_bytes(llama, _sc()) == pytest.approx(params_total(llama) * 2.0, rel=1e-12)


def test_expert_gemms_run_in_their_precision_and_the_rest_in_bf16():
    """W4A8 experts: FP8 compute over 4-bit weights; attention projections, router and LM head in BF16."""
    t = build_graph(load_workload("gpt-oss-20b"), _sc())
    prec = {name: PRECISIONS[code] for name, code in zip(t.name, t.precision, strict=True)}
    assert prec["moe.experts.gate_up_proj"] == "fp8"
    for name in ("attn.qkv_proj", "attn.o_proj", "moe.router", "lm_head"):
        assert prec[name] == "bf16", name
    grouped = t.kind == int(OpKind.GROUPED_GEMM)
    gate_up = [i for i, n in enumerate(t.name) if n == "moe.experts.gate_up_proj"][0]
    qkv = [i for i, n in enumerate(t.name) if n == "attn.qkv_proj"][0]
    assert grouped[gate_up]
    # bytes per weight: 4.25 bits for the MXFP4 experts, 2 bytes for the attention projections
    assert t.bytes_weight[gate_up] == pytest.approx(t.groups[gate_up] * H * 2 * 2880 * MXFP4)
    assert t.bytes_weight[qkv] == pytest.approx(H * (64 * 64 + 2 * 8 * 64) * 2.0 + (64 * 64 + 2 * 8 * 64) * 2.0)


def test_same_precision_everywhere_is_the_plain_scenario():
    a = estimate("b200", "qwen3-30b-a3b", build_scenario(phase="decode", batch=32, input_len=2048, precision="fp8"),
                 chips=1)
    b = estimate("b200", "qwen3-30b-a3b", build_scenario(phase="decode", batch=32, input_len=2048, precision="fp8",
                                                         activation_precision="fp8", dense_precision="fp8"), chips=1)
    assert b.latency_s == pytest.approx(a.latency_s, rel=1e-12)
    assert b.memory_bytes_per_chip == pytest.approx(a.memory_bytes_per_chip, rel=1e-12)


def test_bf16_attention_is_slower_than_fp4_everywhere():
    """Running the non-expert GEMMs in BF16 instead of FP4 can only cost time and memory."""
    fp4 = estimate("b200", "gpt-oss-120b", _sc(activation_precision=None, dense_precision=None, batch=512), chips=1)
    mixed = estimate("b200", "gpt-oss-120b", _sc(activation_precision=None, batch=512), chips=1)
    assert mixed.latency_s > fp4.latency_s
    assert mixed.memory_bytes_per_chip > fp4.memory_bytes_per_chip


def test_unknown_dense_precision_is_an_error_naming_the_flag():
    with pytest.raises(CosimInputError, match="--dense-precision"):
        _sc(dense_precision="fp5")
    with pytest.raises(CosimInputError, match="--activation-precision"):
        _sc(activation_precision="int3")


def test_estimate_cli_takes_the_expert_and_dense_precisions(capsys):
    import json

    from cosim.cli.main import main

    args = ["estimate", "--hardware", "b200", "--workload", "gpt-oss-20b", "--phase", "decode", "--batch", "64",
            "--input-len", "1024", "--precision", "fp4", "--activation-precision", "fp8", "--dense-precision", "bf16",
            "--kv-precision", "fp8", "--fp4-format", "mxfp4", "--format", "json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    api = estimate("b200", "gpt-oss-20b", _sc(), chips=1)
    assert out["latency_s"] == pytest.approx(api.latency_s, rel=1e-12)
    assert main(args[:-2] + ["--dense-precision", "fp5"]) == 2
    assert main(args[:-2] + ["--fp4-format", "fp4x"]) == 2
    assert "--fp4-format must be nvfp4 or mxfp4" in capsys.readouterr().err
