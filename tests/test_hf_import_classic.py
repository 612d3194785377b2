"""The LayerNorm-era decoders through the Hugging Face importer (cosim.specs.hf_classic): GPT-2, GPT-J,
GPT-NeoX, OPT, Phi-2, StarCoder2. Configs as published on the Hub (the keys that matter); expected counts are
hand counts from those shapes, checked against the published totals where one is stated exactly."""

from __future__ import annotations

import pytest

from cosim.errors import CosimInputError
from cosim.specs.hf_import import workload_from_hf_config
from cosim.specs.loader import load_workload
from cosim.workloads.params import kv_cache_bytes_per_token, params_total


def _ln(h: int) -> int:
    return 2 * h  # LayerNorm weight and bias


def test_gpt2_small_by_hand():
    # openai-community/gpt2: biases everywhere, learned positions (1024), tied head
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 768, "n_layer": 12,
              "n_head": 12, "n_positions": 1024, "n_inner": None, "vocab_size": 50257,
              "activation_function": "gelu_new"}
    h = 768
    layer = (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h) + 2 * _ln(h)
    expected = 12 * layer + 50257 * h + 1024 * h + _ln(h)
    assert expected == 124_439_808  # the 124M of the model card
    model = workload_from_hf_config(config, file="gpt2.json")
    assert model.learned_position_embeddings and model.mlp.kind == "gelu" and model.tie_word_embeddings
    assert params_total(model) == expected


def test_gpt_j_config_matches_the_catalog_and_its_card():
    # EleutherAI/gpt-j-6b config.json
    config = {"model_type": "gptj", "architectures": ["GPTJForCausalLM"], "n_embd": 4096, "n_layer": 28,
              "n_head": 16, "n_positions": 2048, "rotary_dim": 64, "n_inner": None, "vocab_size": 50400,
              "activation_function": "gelu_new", "tie_word_embeddings": False}
    model = workload_from_hf_config(config, file="gpt-j-6b.json")
    catalog = load_workload("gpt-j-6b")
    assert model.attention == catalog.attention and model.mlp == catalog.mlp
    assert model.parallel_attention_mlp and model.lm_head_bias
    h = 4096
    layer = 4 * h * h + (h * 4 * h + 4 * h) + (4 * h * h + h) + _ln(h)
    expected = 28 * layer + 50400 * h + (50400 * h + 50400) + _ln(h)
    assert params_total(model) == params_total(catalog) == expected
    # the model card's "Number of parameters", 6,053,381,344, is 0.04% above the weights' count
    assert expected == pytest.approx(6_053_381_344, rel=5e-4)


def test_gpt_neox_20b_by_hand_and_against_its_paper():
    # EleutherAI/gpt-neox-20b: parallel residual with two LayerNorms, biases, untied embed_out
    config = {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "hidden_size": 6144,
              "num_hidden_layers": 44, "num_attention_heads": 64, "intermediate_size": 24576,
              "vocab_size": 50432, "max_position_embeddings": 2048, "rotary_pct": 0.25,
              "use_parallel_residual": True, "tie_word_embeddings": False, "hidden_act": "gelu"}
    h = 6144
    layer = (h * 3 * h + 3 * h) + (h * h + h) + (h * 24576 + 24576) + (24576 * h + h) + 2 * _ln(h)
    expected = 44 * layer + 2 * 50432 * h + _ln(h)
    assert expected == 20_554_567_680  # GPT-NeoX-20B paper (arXiv 2204.06745), total parameters
    model = workload_from_hf_config(config, file="gpt-neox-20b.json")
    assert model.parallel_attention_mlp and model.parallel_block_norms == 2
    assert params_total(model) == expected
    sequential = workload_from_hf_config({**config, "use_parallel_residual": False})
    assert not sequential.parallel_attention_mlp and params_total(sequential) == expected


def test_opt_125m_by_hand_and_opt_350m_refused():
    # facebook/opt-125m: ReLU MLP, biases, learned positions with OPT's offset of 2 rows, tied head
    config = {"model_type": "opt", "architectures": ["OPTForCausalLM"], "hidden_size": 768,
              "num_hidden_layers": 12, "num_attention_heads": 12, "ffn_dim": 3072, "vocab_size": 50272,
              "max_position_embeddings": 2048, "word_embed_proj_dim": 768, "activation_function": "relu",
              "do_layer_norm_before": True, "enable_bias": True}
    h = 768
    layer = 4 * (h * h + h) + (h * 3072 + 3072) + (3072 * h + h) + 2 * _ln(h)
    expected = 12 * layer + 50272 * h + (2048 + 2) * h + _ln(h)
    assert expected == 125_239_296
    model = workload_from_hf_config(config, file="opt-125m.json")
    assert model.mlp.kind == "relu" and model.attention.qkv_bias and model.attention.out_bias
    assert params_total(model) == expected
    with pytest.raises(CosimInputError) as err:
        workload_from_hf_config({**config, "hidden_size": 1024, "word_embed_proj_dim": 512}, file="opt-350m.json")
    assert "opt-350m.json" in str(err.value) and "word_embed_proj_dim" in str(err.value)


def test_phi_2_by_hand():
    # microsoft/phi-2: parallel block off one LayerNorm, biases, untied head with a bias, MHA (kv heads null)
    config = {"model_type": "phi", "architectures": ["PhiForCausalLM"], "hidden_size": 2560,
              "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": None,
              "intermediate_size": 10240, "vocab_size": 51200, "partial_rotary_factor": 0.4,
              "hidden_act": "gelu_new", "tie_word_embeddings": False, "max_position_embeddings": 2048}
    h = 2560
    layer = 4 * (h * h + h) + (h * 10240 + 10240) + (10240 * h + h) + _ln(h)
    expected = 32 * layer + 2 * 51200 * h + 51200 + _ln(h)
    assert expected == 2_779_683_840  # the model card's "2.7 billion parameters"
    model = workload_from_hf_config(config, file="phi-2.json")
    assert model.attention.head_dim == 80 and model.attention.num_kv_heads == 32
    assert params_total(model) == expected


def test_starcoder2_3b_by_hand_with_its_window_on_every_layer():
    # bigcode/starcoder2-3b: GQA (24 heads, 2 KV heads of 128), biases, plain GELU MLP, window 4096
    config = {"model_type": "starcoder2", "architectures": ["Starcoder2ForCausalLM"], "hidden_size": 3072,
              "num_hidden_layers": 30, "num_attention_heads": 24, "num_key_value_heads": 2,
              "intermediate_size": 12288, "vocab_size": 49152, "sliding_window": 4096, "use_bias": True,
              "norm_type": "layer_norm", "hidden_act": "gelu_pytorch_tanh", "max_position_embeddings": 16384,
              "tie_word_embeddings": True}
    h, kv = 3072, 2 * 128
    layer = (h * h + h) + 2 * (h * kv + kv) + (h * h + h) + (h * 12288 + 12288) + (12288 * h + h) + 2 * _ln(h)
    expected = 30 * layer + 49152 * h + _ln(h)
    model = workload_from_hf_config(config, file="starcoder2-3b.json")
    assert params_total(model) == expected
    assert expected == pytest.approx(3.0e9, rel=0.05)  # the model card's "3B"
    assert model.attention.sliding_window == 4096 and model.attention.sliding_window_layers == 30
    # the cache per token: 30 layers x K and V x 2 heads x 128 x 2 bytes
    assert kv_cache_bytes_per_token(model, 2) == 30 * 2 * kv * 2
