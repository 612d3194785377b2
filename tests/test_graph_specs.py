"""Workload fixtures for the op-graph tests, written from the published configs (not the catalog files,
so the graph tests do not move when the catalog does), and a check that they carry the published sizes.

Sources: meta-llama/Llama-3.1-70B config.json; mistralai/Mixtral-8x7B-v0.1 config.json;
deepseek-ai/DeepSeek-V3 config.json; Wan-Video/Wan2.1 wan/configs/wan_t2v_14B.py and shared_config.py
(umT5-XXL text encoder, 512 text tokens), Wan-VAE compression 4 x 8 x 8 (arXiv 2503.20314).
"""

from __future__ import annotations

import pytest

from cosim.specs.loader import workload_from_dict
from cosim.workloads.params import params_active, params_total

_SRC = {"title": "published config.json (see module docstring)"}

LLAMA_70B = {
    "family": "dense", "name": "llama-3.1-70b", "display_name": "Llama 3.1 70B", "source": _SRC,
    "hidden_size": 8192, "num_layers": 80, "vocab_size": 128256,
    "attention": {"kind": "gqa", "num_heads": 64, "num_kv_heads": 8, "head_dim": 128},
    "mlp": {"kind": "swiglu", "intermediate_size": 28672},
}
LLAMA_8B = {
    **LLAMA_70B, "name": "llama-3.1-8b", "display_name": "Llama 3.1 8B", "hidden_size": 4096, "num_layers": 32,
    "attention": {"kind": "gqa", "num_heads": 32, "num_kv_heads": 8, "head_dim": 128},
    "mlp": {"kind": "swiglu", "intermediate_size": 14336},
}
MIXTRAL_8X7B = {
    "family": "moe", "name": "mixtral-8x7b", "display_name": "Mixtral 8x7B", "source": _SRC,
    "hidden_size": 4096, "num_layers": 32, "vocab_size": 32000,
    "attention": {"kind": "gqa", "num_heads": 32, "num_kv_heads": 8, "head_dim": 128},
    "mlp": {"kind": "swiglu", "intermediate_size": 14336},
    "moe": {"num_experts": 8, "experts_per_token": 2, "expert_intermediate_size": 14336},
}
DEEPSEEK_V3 = {
    "family": "moe", "name": "deepseek-v3", "display_name": "DeepSeek-V3", "source": _SRC,
    "hidden_size": 7168, "num_layers": 61, "vocab_size": 129280,
    "attention": {"kind": "mla", "num_heads": 128, "num_kv_heads": 128, "head_dim": 192, "q_lora_rank": 1536,
                  "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128},
    "mlp": {"kind": "swiglu", "intermediate_size": 18432},
    "moe": {"num_experts": 256, "experts_per_token": 8, "expert_intermediate_size": 2048,
            "num_shared_experts": 1, "first_dense_layers": 3},
}
WAN_14B = {
    "family": "video_dit", "name": "wan2.1-t2v-14b", "display_name": "Wan2.1 T2V 14B", "source": _SRC,
    "dit": {"hidden_size": 5120, "num_layers": 40, "num_heads": 40, "head_dim": 128,
            "mlp": {"kind": "gelu", "intermediate_size": 13824, "bias": True}, "patch_size": [1, 2, 2],
            "cross_attention": True, "text_dim": 4096, "block_layout": "cross_attn", "modulation": "shared",
            "qk_norm": "rms_full", "cross_attn_norm": True, "text_proj_layers": 2},
    # decoder_flops_per_pixel is an arbitrary test input here (the tests below do not depend on it)
    "vae": {"temporal_compression": 4, "spatial_compression": 8, "latent_channels": 16,
            "decoder_flops_per_pixel": 1.0e6, "decoder_flops_source": "test fixture, not a figure"},
    "text_encoder": {"name": "umT5-XXL", "hidden_size": 4096, "num_layers": 24, "num_heads": 64, "head_dim": 64,
                     "mlp": {"kind": "geglu", "intermediate_size": 10240}, "vocab_size": 256384,
                     "max_tokens": 512},
    "defaults": {"frames": 81, "height": 480, "width": 832, "steps": 50, "cfg": True},
}


def load(spec: dict):
    return workload_from_dict(spec, "fixture")


@pytest.mark.parametrize(("spec", "total", "active"), [
    (LLAMA_8B, 8.03e9, None),          # Llama 3 herd paper, Table 3 / model card: 8.03B
    (LLAMA_70B, 70.6e9, None),         # model card: 70.6B
    (MIXTRAL_8X7B, 46.7e9, 12.9e9),    # Mistral AI, "Mixtral of experts" (arXiv 2401.04088): 46.7B / 12.9B
    (DEEPSEEK_V3, 671e9, None),        # DeepSeek-V3 technical report (arXiv 2412.19437): 671B total
])
def test_fixtures_carry_the_published_sizes(spec, total, active):
    model = load(spec)
    assert params_total(model) == pytest.approx(total, rel=0.01)
    if active:
        assert params_active(model) == pytest.approx(active, rel=0.01)
