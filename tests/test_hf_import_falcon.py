"""Falcon configs (transformers' FalconConfig keys and the original RWConfig ones) through the Hugging Face
importer. Expected parameter counts are hand counts from the published shapes."""

from __future__ import annotations

import pytest

from cosim.specs.hf_import import workload_from_hf_config
from cosim.specs.loader import load_workload
from cosim.workloads.params import params_total

# tiiuae/falcon-7b config.json (transformers keys)
FALCON_7B = {"architectures": ["FalconForCausalLM"], "model_type": "falcon", "bias": False, "hidden_size": 4544,
             "multi_query": True, "new_decoder_architecture": False, "num_attention_heads": 71,
             "num_hidden_layers": 32, "num_kv_heads": 71, "parallel_attn": True, "vocab_size": 65024}
# tiiuae/falcon-rw-1b config.json: sequential block, full multi-head attention, biases, ALiBi
FALCON_RW_1B = {"architectures": ["FalconForCausalLM"], "model_type": "falcon", "alibi": True, "bias": True,
                "hidden_size": 2048, "multi_query": False, "new_decoder_architecture": False,
                "num_attention_heads": 32, "num_hidden_layers": 24, "parallel_attn": False, "vocab_size": 50304}
# Falcon 180B's shapes in the original RWConfig spelling (n_head, n_layer, n_head_kv), as TensorRT-LLM ran it:
# a separate output head
FALCON_180B_RW = {"architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 14848,
                  "n_head": 232, "n_head_kv": 8, "n_layer": 80, "new_decoder_architecture": True,
                  "parallel_attn": True, "bias": False, "vocab_size": 65024, "tie_word_embeddings": False}


def test_falcon_7b_multi_query_parallel_block_by_hand():
    h = 4544
    # fused QKV with one KV head of 64, dense, 4h GELU MLP, one LayerNorm (weight + bias) per parallel block
    layer = h * (71 + 2) * 64 + h * h + 2 * h * 4 * h + 2 * h
    expected = 32 * layer + 65024 * h + 2 * h  # tied head (FalconConfig's default) and the final LayerNorm
    assert expected == 6_921_720_704
    model = workload_from_hf_config(FALCON_7B, file="falcon-7b.json")
    assert model.attention.num_kv_heads == 1 and model.mlp.kind == "gelu" and model.parallel_attention_mlp
    assert params_total(model) == expected


def test_falcon_rw_sequential_block_with_biases_by_hand():
    h = 2048
    attention = 3 * h * h + 3 * h + h * h + h
    mlp = h * 4 * h + 4 * h + 4 * h * h + h
    expected = 24 * (attention + mlp + 2 * 2 * h) + 50304 * h + 2 * h
    model = workload_from_hf_config(FALCON_RW_1B, file="falcon-rw-1b.json")
    assert not model.parallel_attention_mlp and model.attention.num_kv_heads == 32
    assert params_total(model) == expected
    assert expected == pytest.approx(1.3e9, rel=0.01)  # the model card's "1.3B parameters"


def test_falcon_180b_in_rw_keys_matches_the_catalog():
    model = workload_from_hf_config(FALCON_180B_RW, file="falcon-180b.json")
    catalog = load_workload("falcon-180b")
    assert model.attention == catalog.attention and model.mlp == catalog.mlp
    assert model.parallel_block_norms == 2
    assert params_total(model) == params_total(catalog)
    tied = workload_from_hf_config({k: v for k, v in FALCON_180B_RW.items() if k != "tie_word_embeddings"})
    assert params_total(catalog) - params_total(tied) == 65024 * 14848


def test_falcon_2_11b_has_one_norm_in_its_parallel_block():
    config = {**FALCON_180B_RW, "num_ln_in_parallel_attn": 1}
    one, two = workload_from_hf_config(config), workload_from_hf_config(FALCON_180B_RW)
    assert params_total(two) - params_total(one) == 80 * 2 * 14848
