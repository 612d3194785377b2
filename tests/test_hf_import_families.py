"""Hugging Face import of Gemma 1/2, Phi-3/Phi-4, Qwen-MoE, GLM-4.5, OLMoE, Granite and Mistral Small 3.1.

Each fixture is checked against its publisher's parameter counts (tests/data/hf/README.md names the source of
each figure); where cosim leaves a few norm weights out, the test states the exact difference by hand.
"""

import json
from pathlib import Path

import pytest

from cosim.specs.hf_import import workload_from_hf_config
from cosim.workloads.params import params_active, params_total

HF = Path(__file__).parent / "data" / "hf"


def _import(name: str):
    return workload_from_hf_config(json.loads((HF / f"{name}.json").read_text()), file=f"{name}.json")


def _non_embedding(model) -> float:
    """Weights outside the vocabulary matrices (one when tied, two when not)."""
    matrices = 1 if model.tie_word_embeddings else 2
    return params_total(model) - matrices * model.vocab_size * model.hidden_size


@pytest.mark.parametrize(
    ("name", "published_non_embedding", "layers", "hidden"),
    [
        # Gemma report (arXiv 2403.08295) Table 2: non-embedding parameters
        ("gemma-7b", 7_751_248_896, 28, 3072),
        # Gemma 2 report (arXiv 2408.00118) Table 2
        ("gemma-2-9b", 8_324_201_984, 42, 3584),
        ("gemma-2-27b", 26_047_480_320, 46, 4608),
    ],
)
def test_gemma_non_embedding_counts(name, published_non_embedding, layers, hidden):
    model = _import(name)
    # Gemma 2 has two norms per layer beyond the pre-norms (after attention and after the MLP), which cosim
    # leaves out (their time and weights are a few parts in a million); Gemma 1 has none
    post_norms = 2 * layers * hidden if name.startswith("gemma-2") else 0
    assert published_non_embedding - _non_embedding(model) == post_norms
    assert model.tie_word_embeddings and model.mlp.kind == "geglu"


def test_gemma2_alternates_sliding_and_global_layers():
    att = _import("gemma-2-9b").attention
    # Gemma2Config: layers 0, 2, 4, ... slide over 4096 tokens, the odd ones attend globally
    assert (att.sliding_window, att.sliding_window_layers) == (4096, 21)
    assert (att.num_heads, att.num_kv_heads, att.head_dim) == (16, 8, 256)
    assert _import("gemma-2-27b").attention.sliding_window_layers == 23
    assert _import("gemma-7b").attention.sliding_window_layers == 0


def test_gemma2_layer_types_override_the_default_alternation():
    data = json.loads((HF / "gemma-2-9b.json").read_text())
    data["layer_types"] = ["sliding_attention"] * 40 + ["full_attention"] * 2
    assert workload_from_hf_config(data).attention.sliding_window_layers == 40


def test_olmoe_total_matches_its_safetensors_index():
    model = _import("olmoe-1b-7b-0924")
    # safetensors index total_size 13,838,323,712 bytes in BF16 = 6,919,161,856 weights. OLMoE normalises the
    # whole q (16 x 128) and k (16 x 128) projections; cosim counts a per-head norm (2 x 128): 3,840 per layer
    per_layer_norm_gap = (16 + 16) * 128 - 2 * 128
    assert 6_919_161_856 - params_total(model) == 16 * per_layer_norm_gap
    moe = model.moe
    assert (moe.num_experts, moe.experts_per_token, moe.expert_intermediate_size) == (64, 8, 1024)
    assert moe.first_dense_layers == 0 and moe.num_shared_experts == 0
    # OLMoE paper (arXiv 2409.02060): "1.3B active parameters out of a total of 6.9B"
    assert params_active(model) == pytest.approx(1.3e9, rel=0.02)


@pytest.mark.parametrize(
    ("name", "total", "active"),
    [
        # model card: "14.3B parameters in total and 2.7B activated parameters"
        ("qwen1.5-moe-a2.7b", 14.3e9, 2.7e9),
        # named 57B-A14B; 57.4B in Ollama's GGUF metadata
        ("qwen2-57b-a14b", 57.4e9, 14e9),
    ],
)
def test_qwen2_moe_counts(name, total, active):
    model = _import(name)
    assert params_total(model) == pytest.approx(total, rel=0.005)
    assert params_active(model) == pytest.approx(active, rel=0.025)


def test_qwen2_moe_shared_expert_and_biases():
    model = _import("qwen1.5-moe-a2.7b")
    moe, att = model.moe, model.attention
    assert (moe.num_shared_experts, moe.shared_expert_intermediate_size, moe.expert_intermediate_size) == (1, 5632, 1408)
    assert att.qkv_bias and not att.out_bias
    # by hand: one token touches 4 routed experts and the shared one, each gate/up/down over 2048
    no_shared = model.model_copy(update={"moe": moe.model_copy(update={"num_shared_experts": 0,
                                                                       "shared_expert_intermediate_size": None})})
    assert params_active(model) - params_active(no_shared) == 24 * 3 * 2048 * 5632


@pytest.mark.parametrize(
    ("name", "total", "active", "dense_layers", "qk_norm"),
    [
        # GLM-4.5 card: "355 billion total parameters with 32 billion active parameters ... GLM-4.5-Air ...
        # 106 billion total parameters and 12 billion active parameters"; report Table 1: 3 / 1 dense layers,
        # QK-Norm on GLM-4.5 only
        ("glm-4.5", 355e9, 32e9, 3, True),
        ("glm-4.5-air", 106e9, 12e9, 1, False),
    ],
)
def test_glm45_counts_and_layout(name, total, active, dense_layers, qk_norm):
    model = _import(name)
    moe, att = model.moe, model.attention
    assert moe.first_dense_layers == dense_layers and moe.num_shared_experts == 1 and moe.router_bias
    assert att.qk_norm is qk_norm and att.head_dim == 128 and att.num_heads == 96
    # the published totals round differently (the report counts the MTP layer and no embeddings; the card's
    # 106B matches embeddings without MTP): within 1% either way
    assert params_total(model) == pytest.approx(total, rel=0.01)
    # the active figure counts neither the input embedding nor the output layer
    assert params_active(model, include_input_embedding=False) - model.vocab_size * model.hidden_size == \
        pytest.approx(active, rel=0.02)


def test_glm45_biases_on_qkv_only():
    model = _import("glm-4.5-air")
    att = model.attention
    assert att.qkv_bias and not att.out_bias
    no_bias = model.model_copy(update={"attention": att.model_copy(update={"qkv_bias": False})})
    # 46 layers x (96 query heads + 2 x 8 KV heads) x 128
    assert params_total(model) - params_total(no_bias) == 46 * (96 + 2 * 8) * 128


@pytest.mark.parametrize(
    ("name", "published", "rel"),
    [
        # model card: "a 3.8B parameters, lightweight ... model"
        ("phi-3-mini-4k-instruct", 3.8e9, 0.01),
        # 14.7B safetensors count (the card says "14B parameters")
        ("phi-4", 14.7e9, 0.005),
    ],
)
def test_phi3_totals(name, published, rel):
    assert params_total(_import(name)) == pytest.approx(published, rel=rel)


def test_phi3_window_on_every_layer_when_set():
    att = _import("phi-3-mini-4k-instruct").attention
    assert (att.sliding_window, att.sliding_window_layers) == (2047, 32)
    assert _import("phi-4").attention.sliding_window is None  # "sliding_window": null


def test_mistral3_reads_its_text_config():
    model = _import("mistral-small-3.1-24b-instruct-2503")
    text = json.loads((HF / "mistral-small-3.1-24b-instruct-2503.json").read_text())["text_config"]
    direct = workload_from_hf_config(text)
    assert params_total(model) == params_total(direct)
    # by hand: 40 x (attention 5120 x (32 + 2 x 8) x 128 + 32 x 128 x 5120, MLP 3 x 5120 x 32768, 2 norms)
    # + untied 131072 x 5120 twice + the final norm; the card's "24 billion" includes the vision encoder
    attention = 5120 * (32 + 16) * 128 + 32 * 128 * 5120
    per_layer = attention + 3 * 5120 * 32768 + 2 * 5120
    assert params_total(model) == 40 * per_layer + 2 * 131072 * 5120 + 5120


def test_granite_reads_as_llama():
    llama = json.loads((HF / "llama-3.1-8b.json").read_text())
    granite = {**llama, "model_type": "granite", "architectures": ["GraniteForCausalLM"], "embedding_multiplier": 12.0,
               "residual_multiplier": 0.22, "attention_multiplier": 0.0078125, "logits_scaling": 16.0}
    assert params_total(workload_from_hf_config(granite)) == params_total(workload_from_hf_config(llama))
