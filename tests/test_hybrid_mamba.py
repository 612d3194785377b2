"""Hybrid Mamba-2 / attention decoders (Nemotron-H, Nemotron Nano 2): spec, parameters, state cache, graph rows.

Expected values are hand calculations from the published config (nvidia/NVIDIA-Nemotron-Nano-9B-v2 config.json:
hidden 4,480, 27 Mamba-2 / 4 attention / 25 MLP blocks, Mamba-2 128 heads x 80, 8 groups, state 128, conv 4)
and the published parameter count (8.89B), not the code's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.errors import CosimInputError
from cosim.specs.loader import load_workload

SLUG = "nemotron-nano-9b-v2"
H, VOCAB = 4480, 131072
HEADS, P, G, N, K = 128, 80, 8, 128, 4
INNER = HEADS * P  # 10,240
CONV_CH = INNER + 2 * G * N  # 12,288
IN_PROJ = 2 * INNER + 2 * G * N + HEADS  # 22,656
N_MAMBA, N_ATT, N_MLP = 27, 4, 25
FIXTURES = Path(__file__).parent / "data" / "hf"


@pytest.fixture(scope="module")
def model():
    return load_workload(SLUG)


def _scenario(phase: str, batch: int, input_len: int = 1024, state: str | None = None, tp: int = 1):
    from cosim.cli.common import build_scenario

    return build_scenario(phase=phase, batch=batch, input_len=input_len, output_len=256, tp=tp,
                          ssm_state_precision=state)


def test_block_counts_follow_the_pattern(model):
    assert model.block_counts() == (N_ATT, N_MLP, N_MAMBA, 0)
    assert model.attention_layers == N_ATT
    # the first three layers are M, -, M
    assert model.block_counts(0, 3) == (0, 1, 2, 0)


def test_params_match_hand_count_and_published(model):
    from cosim.workloads.params import params_active, params_total

    mamba = H * IN_PROJ + INNER * H + CONV_CH * (K + 1) + 3 * HEADS + INNER
    attention = H * 40 * 128 * 2 + 2 * H * 8 * 128
    mlp = 2 * H * 15680  # squared ReLU: up and down, no gate
    norms = 56 * H + H  # one per block, plus the final norm
    expected = 2 * VOCAB * H + N_MAMBA * mamba + N_ATT * attention + N_MLP * mlp + norms
    assert params_total(model) == expected
    assert params_total(model) == pytest.approx(8.89e9, rel=2e-3)  # the Hugging Face page's count
    assert params_active(model) == params_total(model)


def test_kv_cache_counts_only_the_attention_blocks(model):
    from cosim.workloads.params import kv_cache_bytes_per_token

    assert kv_cache_bytes_per_token(model, 2.0) == 2 * N_ATT * 8 * 128 * 2  # 16 KiB, not 56 layers' 224 KiB


@pytest.mark.parametrize("state_bytes", [2.0, 4.0])
def test_state_per_sequence_is_heads_x_head_dim_x_state_plus_conv_window(model, state_bytes):
    from cosim.workloads.params import ssm_state_bytes_per_sequence

    per_layer = HEADS * P * N * state_bytes + (K - 1) * CONV_CH * 2.0
    assert ssm_state_bytes_per_sequence(model, state_bytes, 2.0) == N_MAMBA * per_layer


def test_footprint_holds_one_state_per_sequence_whatever_the_context(model):
    from cosim.engines.memory import footprint

    fp32 = N_MAMBA * (HEADS * P * N * 4 + (K - 1) * CONV_CH * 2)
    kv = 2 * N_ATT * 8 * 128 * 2
    for ctx in (1000, 8000):
        f = footprint(model, _scenario("decode", 16, ctx, state="fp32"))
        assert f.kv_cache == pytest.approx(16 * (fp32 + kv * ctx))


def test_tp_splits_the_state(model):
    from cosim.engines.memory import ssm_state_bytes_per_chip

    one = ssm_state_bytes_per_chip(model, _scenario("decode", 8), 8)
    two = ssm_state_bytes_per_chip(model, _scenario("decode", 8, tp=2), 8)
    assert two == pytest.approx(one / 2)  # 8 groups and 128 heads both split over 2


def test_prefill_scan_flops_per_token(model):
    from cosim.graph.build import prefill_graph

    t = prefill_graph(model, _scenario("prefill", 2, 1024))
    scan = t.name == "mamba.scan"
    q = 128  # chunk_size
    per_token = 2 * q * G * N + 2 * q * P * HEADS + 4 * N * P * HEADS  # 8,126,464
    assert float((t.flops * t.repeat)[scan].sum()) == pytest.approx(2 * 1024 * N_MAMBA * per_token)
    # in_proj and out_proj are the projections a hand count gives
    proj = np.isin(t.name, ["mamba.in_proj", "mamba.out_proj"])
    assert float((t.flops * t.repeat)[proj].sum()) == pytest.approx(2 * 2048 * N_MAMBA * (H * IN_PROJ + INNER * H))


def test_decode_reads_and_writes_every_state(model):
    from cosim.graph.build import decode_graph

    b = 32
    t = decode_graph(model, _scenario("decode", b, state="fp32"), 1024)
    rows = t.name == "mamba.state_update"
    per_seq = N_MAMBA * (HEADS * P * N * 4 + (K - 1) * CONV_CH * 2)
    assert float((t.bytes_kv_read * t.repeat)[rows].sum()) == pytest.approx(b * per_seq)
    assert float((t.bytes_kv_write * t.repeat)[rows].sum()) == pytest.approx(b * per_seq)


def _decode_latency(workload, batch, ctx, state=None):
    from cosim.engines.estimate import estimate

    return estimate("h100-sxm", workload, _scenario("decode", batch, ctx, state=state)).latency_s


def test_decode_time_barely_grows_with_context_next_to_a_transformer(model):
    """Only 4 of 56 layers read a KV cache: going from 1K to 32K of context costs the hybrid a small fraction
    of what it costs Llama 3.1 8B, whose 32 layers all attend."""
    hybrid = _decode_latency(model, 16, 32768) - _decode_latency(model, 16, 1024)
    llama = _decode_latency("llama-3.1-8b", 16, 32768) - _decode_latency("llama-3.1-8b", 16, 1024)
    assert 0 < hybrid < 0.2 * llama


@settings(max_examples=8, deadline=None)
@given(batch=st.sampled_from([8, 64, 256]))
def test_a_wider_state_never_makes_decode_faster(model, batch):
    assert _decode_latency(model, batch, 2048, "fp32") >= _decode_latency(model, batch, 2048, "bf16")


def test_serving_sets_the_states_aside_before_the_kv_cache(model):
    from cosim.engines.memory import ssm_state_bytes_per_chip
    from cosim.serving.adapter import kv_capacity
    from cosim.specs.loader import load_hardware

    hw = load_hardware("h100-sxm")
    sc = _scenario("generate", 1, state="fp32")
    none, per_token, _ = kv_capacity(hw, model, sc, 8192, 0.9)
    some, _, reason = kv_capacity(hw, model, sc, 8192, 0.9, state_sequences=64)
    assert reason is None
    states = ssm_state_bytes_per_chip(model, sc, 64)
    assert none - some == pytest.approx(states / per_token, abs=1.0)
    _, _, reason = kv_capacity(hw, model, sc, 8192, 0.9, state_sequences=4096)  # 4096 x 143 MB
    assert reason and "Mamba-2 states" in reason


def test_hf_config_imports_as_the_catalog_spec(model):
    from cosim.specs.hf_import import workload_from_hf_config

    data = json.loads((FIXTURES / "nvidia-nemotron-nano-9b-v2.json").read_text())
    w = workload_from_hf_config(data, "nvidia-nemotron-nano-9b-v2.json")
    assert (w.hybrid_pattern, w.mamba, w.attention, w.mlp) == (model.hybrid_pattern, model.mamba,
                                                                model.attention, model.mlp)


def test_hf_unknown_block_letters_are_a_clear_error():
    from cosim.specs.hf_import import workload_from_hf_config

    data = json.loads((FIXTURES / "nvidia-nemotron-nano-9b-v2.json").read_text())
    data["hybrid_override_pattern"] = "MX" * 28
    with pytest.raises(CosimInputError, match="hybrid_override_pattern") as err:
        workload_from_hf_config(data, "x.json")
    assert "'X'" in str(err.value)


@pytest.mark.parametrize("change, message", [
    ({"hybrid_pattern": "M*-"}, "hybrid_pattern has 3 layers"),
    ({"mamba": None}, "needs a 'mamba' section"),
    ({"hybrid_pattern": None}, "needs a hybrid_pattern"),
    ({"hybrid_pattern": "M-" * 28}, "no attention layer"),
])
def test_inconsistent_hybrid_specs_are_rejected(model, change, message):
    from pydantic import ValidationError

    from cosim.specs.workload import DecoderLM

    data = model.model_dump() | change
    with pytest.raises(ValidationError, match=message):
        DecoderLM(**data)


def test_a_state_precision_vllm_cannot_hold_is_rejected():
    from pydantic import ValidationError

    from cosim.specs.scenario import Scenario

    with pytest.raises(ValidationError, match="ssm_state_precision"):
        Scenario(phase="decode", ssm_state_precision="fp8")
    with pytest.raises(CosimInputError, match="--ssm-state-precision"):
        _scenario("decode", 1, state="fp8")


def test_mappings_the_mixer_cannot_take_are_errors(model):
    from cosim.graph.sharding import resolve

    with pytest.raises(CosimInputError, match="mamba.num_heads=128"):  # tp=40 divides the 40 attention heads
        resolve(model, _scenario("decode", 1, tp=40))
    sp2 = _scenario("prefill", 2).model_copy(
        update={"parallelism": _scenario("prefill", 2).parallelism.model_copy(update={"sp": 2})})
    with pytest.raises(CosimInputError, match="sequence parallelism over Mamba-2"):
        resolve(model, sp2)


# --- Nemotron 3 Nano 30B-A3B: Mamba-2, attention and MoE blocks (the config's E layers) ---
NANO3 = "nemotron-3-nano-30b-a3b"
H3, MH3, MP3 = 2688, 64, 64  # hidden; Mamba-2 heads x head_dim
E3, K3, W3, WS3 = 128, 6, 1856, 3712  # experts, per token, expert width, shared width


def _nano3_blocks():
    inner = MH3 * MP3
    mamba = H3 * (2 * inner + 2 * G * N + MH3) + inner * H3 + (inner + 2 * G * N) * (K + 1) + 3 * MH3 + inner
    attention = H3 * 32 * 128 * 2 + 2 * H3 * 2 * 128
    expert = 2 * H3 * W3  # squared ReLU: up and down
    router = H3 * E3 + E3  # plus the per-expert score-correction bias
    return mamba, attention, expert, router, 2 * H3 * WS3


def test_nano3_params_match_the_model_card():
    from cosim.workloads.params import params_active, params_total

    w = load_workload(NANO3)
    assert w.block_counts() == (6, 0, 23, 23) and w.moe_layers == 23
    mamba, attention, expert, router, shared = _nano3_blocks()
    blocks = 23 * mamba + 6 * attention + 52 * H3 + H3
    total = 2 * VOCAB * H3 + blocks + 23 * (E3 * expert + router + shared)
    active = 2 * VOCAB * H3 + blocks + 23 * (K3 * expert + router + shared)
    assert params_total(w) == total
    assert params_active(w) == active
    assert params_total(w) == pytest.approx(31.6e9, rel=2e-3)  # model card: 31.6B total
    # 3.2B active without the input embedding (DeepSeek's convention), 3.6B with it
    assert params_active(w, include_input_embedding=False) == pytest.approx(3.2e9, rel=0.02)
    assert params_active(w) == pytest.approx(3.6e9, rel=0.01)


def test_nano3_hf_config_imports_as_the_catalog_spec():
    from cosim.specs.hf_import import workload_from_hf_config
    from cosim.workloads.params import params_total

    data = json.loads((FIXTURES / "nvidia-nemotron-3-nano-30b-a3b-bf16.json").read_text())
    w = workload_from_hf_config(data, "nano3.json")
    c = load_workload(NANO3)
    assert (w.family, w.hybrid_pattern, w.mamba, w.moe, w.attention) == (c.family, c.hybrid_pattern, c.mamba,
                                                                          c.moe, c.attention)
    assert params_total(w) == params_total(c)


def test_nano3_reads_the_block_names_spelling_too():
    """Newer Nemotron-H configs list `layers_block_type` names instead of `hybrid_override_pattern` letters."""
    from cosim.specs.hf_import import workload_from_hf_config

    data = json.loads((FIXTURES / "nvidia-nemotron-3-nano-30b-a3b-bf16.json").read_text())
    names = {"M": "mamba", "E": "moe", "*": "attention", "-": "mlp"}
    data["layers_block_type"] = [names[c] for c in data.pop("hybrid_override_pattern")]
    w = workload_from_hf_config(data, "nano3.json")
    assert w.hybrid_pattern == load_workload(NANO3).hybrid_pattern and w.moe is not None
    data["layers_block_type"][0] = "gated_deltanet"
    with pytest.raises(CosimInputError, match="layers_block_type"):
        workload_from_hf_config(data, "nano3.json")


def test_nano3_graph_runs_its_experts_on_the_e_layers_only():
    from cosim.engines.eager import eager_host_s
    from cosim.engines.efficiency import load_engine_defaults
    from cosim.graph.build import decode_graph

    w = load_workload(NANO3)
    t = decode_graph(w, _scenario("decode", 64), 1024)
    assert set(t.repeat[np.char.startswith(t.name.astype(str), "moe.")]) == {23}
    assert set(t.repeat[np.char.startswith(t.name.astype(str), "mamba.")]) == {23}
    assert "mlp.up_proj" not in set(t.name)
    per_layer = float(load_engine_defaults()["eager_moe_layer_host_s"]["value"])
    assert eager_host_s(w, _scenario("generate", 64)) == pytest.approx(23 * per_layer)


def test_an_e_block_needs_a_moe_section(model):
    from pydantic import ValidationError

    from cosim.specs.workload import DecoderLM

    data = model.model_dump() | {"hybrid_pattern": "E" + model.hybrid_pattern[1:]}
    with pytest.raises(ValidationError, match="E \\(MoE\\) layers needs a 'moe' section"):
        DecoderLM(**data)


def test_hybrid_ml_energy_rows_are_scored_not_fitted():
    """The vLLM factor is fitted on attention/GEMM/MoE models; a hybrid's rows are held out of its fit and keep
    an out-of-sample error (cosim.validate.fit.fit_energy_stack)."""
    from cosim.engines.calibration import load_calibration
    from cosim.validate.fit import energy_stack_key
    from cosim.validate.runner import base_table, query_for

    cal = load_calibration()
    table = base_table()
    hybrid = table[(table.source_class == "ml_energy") & (table.workload == SLUG)]
    assert len(hybrid) == 8
    vllm = cal["stacks"]["vllm"]
    images = table[(table.source_class == "ml_energy") & table.id.str.contains("image-chat")]
    assert set(vllm["held_out_rows"]) == set(hybrid.id) | set(images.id)
    rows = table[(table.source_class == "ml_energy") & table.reliability.isin(["high", "medium"])]
    fitted = [rid for rid, w in zip(rows.id, rows.workload, strict=True)
              if w != SLUG and "image-chat" not in rid and energy_stack_key(query_for(rid)) == "vllm"]
    assert vllm["rows"] == len(fitted)
    assert all(rid in cal["loo_errors"] for rid in hybrid.id)
