"""What a training step adds beyond (forward passes + 2) x its forward ops (`cosim.graph.training`).

Hand-derived expectations:
* FlashAttention's backward runs five matrix products to the forward's two (it recomputes QK^T): 2.5x the
  forward FLOPs (FlashAttention-2, Sec. 3.1.2), so attention costs (passes + 2.5) forwards, not passes + 2.
* Transformer Engine's FP8 recipe leaves dot-product attention (fp8_dpa off by default) and Megatron's
  output layer in BF16.
* Each FP8 GEMM casts its input (every forward pass) and its output gradient (once) at 2 bytes read + 2
  written per element.
* The MLP activation is a kernel of its own in training: each forward pass reads its inputs (gate and up when
  gated) and writes its output; the backward reads the saved inputs and the output gradient and writes the
  inputs' gradients. For E output elements and i inputs that is passes x (i + 1) E + (2 i + 1) E elements.
* The loss reads every logit once and writes its gradient once: 2 x tokens x vocab elements at 2 bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.common import build_scenario
from cosim.engines.estimate import estimate
from cosim.graph.optable import PRECISION_CODE, OpKind, OpTable, Stage
from cosim.graph.rows import Dtypes, elementwise, gemm, head_dtypes
from cosim.graph.training import training_table
from cosim.specs.loader import load_hardware


def _table(precision: str) -> OpTable:
    dt = Dtypes(1.0 if precision == "fp8" else 2.0, 2.0, 2.0, precision)
    attention = {"name": "attn.attention", "kind": int(OpKind.ATTENTION), "stage": int(Stage.DECODER),
                 "precision": dt.code, "flops": 1e12, "repeat": 32.0}
    return OpTable.from_rows([
        gemm("mlp.down_proj", Stage.DECODER, dt, 8192, 14336, 4096, repeat=32.0),
        attention,
        gemm("lm_head", Stage.LM_HEAD, head_dtypes(dt), 8192, 4096, 128256),  # as the decoder graph builds it
    ])


@pytest.mark.parametrize("passes", [1, 2])
def test_attention_backward_recomputes_the_scores(passes):
    out = training_table(_table("bf16"), passes)
    att = list(out.name).index("attn.attention")
    # the engines multiply every row by passes + 2: attention must come to passes + 2.5 forwards
    assert out.repeat[att] * (passes + 2) == pytest.approx(32.0 * (passes + 2.5))
    assert out.repeat[0] == 32.0 and len(out) == 4  # GEMMs unchanged, no casts in BF16, one loss row


def test_fp8_keeps_attention_and_the_output_layer_in_bf16():
    out = training_table(_table("fp8"), 1)
    names = list(out.name)
    bf16, fp8 = PRECISION_CODE["bf16"], PRECISION_CODE["fp8"]
    assert out.precision[names.index("attn.attention")] == bf16
    head = names.index("lm_head")
    assert out.precision[head] == bf16 and out.weight_precision[head] == bf16
    assert out.bytes_weight[head] == pytest.approx(4096 * 128256 * 2.0)  # BF16 weights, 2 bytes each
    assert out.precision[names.index("mlp.down_proj")] == fp8


@pytest.mark.parametrize("passes", [1, 2])
def test_fp8_gemms_pay_their_casts(passes):
    out = training_table(_table("fp8"), passes)
    names = list(out.name)
    assert "lm_head.fp8_quantize" not in names and "attn.attention.fp8_quantize" not in names
    cast = names.index("mlp.down_proj.fp8_quantize")
    assert out.kind[cast] == int(OpKind.ELEMENTWISE) and out.repeat[cast] == 32.0
    per_step = (out.bytes_act_in[cast] + out.bytes_act_out[cast]) * (passes + 2)
    # input 8192 x 14336 cast in each forward pass, output gradient 8192 x 4096 once, 4 bytes per element
    assert per_step == pytest.approx(4.0 * (passes * 8192 * 14336 + 8192 * 4096))


@settings(max_examples=40, deadline=None)
@given(repeat=st.floats(min_value=1.0, max_value=200.0), passes=st.sampled_from([1, 2]))
def test_only_attention_is_reweighted(repeat, passes):
    t = _table("bf16")
    t.repeat = t.repeat * 0 + repeat
    out = training_table(t, passes)
    att = out.kind == int(OpKind.ATTENTION)
    assert (out.repeat[~att] == repeat).all()
    assert (out.repeat[att] > repeat).all()


def _train(precision: str, hardware: str = "h100-sxm"):
    sc = build_scenario(phase="train", batch=16, input_len=4096, output_len=1, precision=precision, dp=8,
                        zero=1, microbatch=1)
    return estimate(hardware, "llama-3.1-8b", sc, chips=8)


def test_model_flops_do_not_depend_on_precision_or_recompute():
    """MFU counts model FLOPs (3 x the forward), not the backward's recompute or the casts."""
    peak = load_hardware("h100-sxm")
    done = {p: _train(p) for p in ("bf16", "fp8")}
    model = {p: r.mfu * peak.peak_flops(p) * r.latency_s for p, r in done.items()}
    assert model["fp8"] == pytest.approx(model["bf16"], rel=1e-9)
    # and that count is 3 x the forward: 6 x the GEMM FLOPs per token and 3 x causal attention, hand-counted
    h, inter, layers, vocab, kv = 4096, 14336, 32, 128256, 1024
    gemm_per_token = 2 * layers * (h * (h + 2 * kv) + h * h + 3 * h * inter) + 2 * h * vocab
    attention_per_token = 2 * layers * 2 * h * 4096 / 2  # QK^T and PV, causal
    tokens_per_chip = 16 * 4096 / 8
    assert model["bf16"] == pytest.approx(3 * tokens_per_chip * (gemm_per_token + attention_per_token), rel=0.01)


def test_fp8_training_is_faster_than_bf16_but_less_than_twice():
    """FP8 doubles only the quantised GEMMs' peak; BF16 attention, the BF16 head and the casts keep the
    step above half the BF16 one."""
    bf16, fp8 = _train("bf16"), _train("fp8")
    assert 0.5 * bf16.latency_s < fp8.latency_s < bf16.latency_s


def test_training_estimates_carry_the_training_rows_bands():
    """`--with-uncertainty` on a training run draws on the held-out training rows, not on inference ones."""
    from cosim.validate.uncertainty import band, loo_errors

    train = band("throughput_tokens_per_s", 1e5, hardware="h100-sxm", moe=False, phase="train")
    infer = band("throughput_tokens_per_s", 1e5, hardware="h100-sxm", moe=False)
    assert train["group"].startswith("training_tokens_per_s_per_gpu") and train["n"] >= 5
    assert infer["group"].startswith("offline_throughput")
    # the narrowest group of tuned trainers' rows with at least 5: dense runs on Hopper, else on every chip
    errs = loo_errors("training_tokens_per_s_per_gpu", generation="nvidia-hopper", moe=False, trainer="tuned")
    if len(errs) < 5:
        errs = loo_errors("training_tokens_per_s_per_gpu", moe=False, trainer="tuned")
    assert train["n"] == len(errs)
    lo, hi = 1e5 / (1 + max(errs)), 1e5 / (1 + min(errs))  # the band lies within the extreme errors' range
    assert lo <= train["p10"] <= train["p90"] <= hi


@pytest.mark.parametrize("passes", [1, 2])
def test_the_loss_reads_the_logits_and_writes_their_gradient(passes):
    out = training_table(_table("bf16"), passes)
    loss = list(out.name).index("loss.cross_entropy")
    assert out.kind[loss] == int(OpKind.ELEMENTWISE) and out.stage[loss] == int(Stage.LM_HEAD)
    per_step = (out.bytes_act_in[loss] + out.bytes_act_out[loss]) * (passes + 2) * out.repeat[loss]
    assert per_step == pytest.approx(2 * 8192 * 128256 * 2.0)  # once each way, BF16 logits


@pytest.mark.parametrize(("gated", "passes"), [(True, 1), (True, 2), (False, 1), (False, 2)])
def test_the_activation_moves_its_inputs_and_gradients(gated, passes):
    dt = Dtypes(2.0, 2.0, 2.0, "bf16")
    tokens, width, hidden = 8192, 14336, 4096
    up = "mlp.gate_up_proj" if gated else "mlp.up_proj"
    table = OpTable.from_rows([
        gemm(up, Stage.DECODER, dt, tokens, hidden, (2 if gated else 1) * width, repeat=32.0),
        elementwise("mlp.act", Stage.DECODER, dt, tokens * width, 4.0, fused=True, repeat=32.0),
        gemm("mlp.down_proj", Stage.DECODER, dt, tokens, width, hidden, repeat=32.0),
    ])
    out = training_table(table, passes)
    act = list(out.name).index("mlp.act")
    assert out.fused[act] == 0
    inputs = 2 if gated else 1
    elements = passes * (inputs + 1) + 2 * inputs + 1  # per output element, over the whole step
    per_step = (out.bytes_act_in[act] + out.bytes_act_out[act]) * (passes + 2)
    assert per_step == pytest.approx(elements * tokens * width * 2.0)
    assert out.bytes_act_in[list(out.name).index("mlp.down_proj")] == table.bytes_act_in[2]  # GEMMs untouched
