"""Catalog extension: Qwen3-8B, Qwen3-32B, Qwen3-30B-A3B, gpt-oss-120b/20b and Cosmos-Predict1-7B-Text2World.

Parameter counts are checked against the published model-card figures and against hand counts written
out from the published configs; the Hugging Face fixtures in tests/data/hf must import to the same
model as the catalog YAML; the Cosmos tokenizer decoder's FLOPs are recounted from the documented
derivation.
"""

import json
import math
from pathlib import Path

import pytest

from cosim.cli.main import main
from cosim.specs.hf_import import workload_from_hf_config
from cosim.specs.loader import list_slugs, load_workload
from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total
from cosim.workloads.video import dit_params, dit_tokens, latent_shape, text_encoder_params

HF = Path(__file__).parent / "data" / "hf"
QWEN_VOCAB = 151936

# (slug, published total, published non-embedding total). Sources: "Number of Parameters" and the
# non-embedding count on each Hugging Face model card:
QWEN3 = [
    ("qwen3-8b", 8.2e9, 6.95e9),  # huggingface.co/Qwen/Qwen3-8B: 8.2B, non-embedding 6.95B
    ("qwen3-32b", 32.8e9, 31.2e9),  # huggingface.co/Qwen/Qwen3-32B: 32.8B, non-embedding 31.2B
    ("qwen3-30b-a3b", 30.5e9, 29.9e9),  # huggingface.co/Qwen/Qwen3-30B-A3B: 30.5B, non-embedding 29.9B
]


def test_new_slugs_in_catalog():
    slugs = set(list_slugs("workloads"))
    assert {"qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "cosmos-predict1-7b-text2world"} <= slugs


@pytest.mark.parametrize(("slug", "total", "non_embedding"), QWEN3)
def test_qwen3_totals_match_model_card(slug, total, non_embedding):
    model = load_workload(slug)
    assert model.source.url and "huggingface.co/Qwen" in model.source.url
    assert model.published_params_total == total
    assert params_total(model) == pytest.approx(total, rel=0.01)
    # untied: an input embedding and an output head, each vocab x hidden
    embeddings = 2 * QWEN_VOCAB * model.hidden_size
    assert params_total(model) - embeddings == pytest.approx(non_embedding, rel=0.01)


def test_qwen3_30b_a3b_active_against_card():
    # Model card: "3.3B activated". The count with both embedding matrices (Qwen's convention, which
    # makes Qwen3-235B-A22B come out at 22B) is 3.353B: the card cuts it to one decimal (3.3), so it is
    # 1.6% above the card's figure and cannot match it within 1%. Assert the truncation instead.
    model = load_workload("qwen3-30b-a3b")
    active = params_active(model)
    assert math.floor(active / 1e8) == 33
    assert active == pytest.approx(3.3e9, rel=0.02)
    assert model.published_params_active == 3.3e9


def _qwen3_layer(hidden, heads, kv, head_dim=128):
    # q, o: hidden x heads*head_dim; k, v: hidden x kv*head_dim; q/k RMSNorm (head_dim each); no biases
    q_dim, kv_dim = heads * head_dim, kv * head_dim
    return 2 * hidden * q_dim + 2 * hidden * kv_dim + 2 * head_dim + 2 * hidden  # + the two RMSNorms


def test_qwen3_8b_and_32b_hand_count():
    # config.json: 8B hidden 4096, 36 layers, 32/8 heads, SwiGLU 12288; 32B hidden 5120, 64 layers, 64/8, 25600
    q8 = 36 * (_qwen3_layer(4096, 32, 8) + 3 * 4096 * 12288) + 2 * QWEN_VOCAB * 4096 + 4096
    q32 = 64 * (_qwen3_layer(5120, 64, 8) + 3 * 5120 * 25600) + 2 * QWEN_VOCAB * 5120 + 5120
    assert params_total(load_workload("qwen3-8b")) == q8
    assert params_total(load_workload("qwen3-32b")) == q32
    assert params_active(load_workload("qwen3-8b")) == q8  # dense: everything is active


def test_qwen3_30b_a3b_hand_count():
    # 48 layers, hidden 2048, 32/4 heads; every layer MoE: 128 SwiGLU experts of width 768, 8 per token,
    # router 2048 x 128 without bias, no shared expert
    base = _qwen3_layer(2048, 32, 4) + 2048 * 128
    expert = 3 * 2048 * 768
    emb = 2 * QWEN_VOCAB * 2048 + 2048
    model = load_workload("qwen3-30b-a3b")
    assert params_total(model) == 48 * (base + 128 * expert) + emb
    assert params_active(model) == 48 * (base + 8 * expert) + emb


def test_qwen3_kv_cache_bytes():
    # 2 (K, V) x layers x KV heads x 128 x 2 bytes
    assert kv_cache_bytes_per_token(load_workload("qwen3-8b")) == 2 * 36 * 8 * 128 * 2
    assert kv_cache_bytes_per_token(load_workload("qwen3-32b")) == 2 * 64 * 8 * 128 * 2
    assert kv_cache_bytes_per_token(load_workload("qwen3-30b-a3b")) == 2 * 48 * 4 * 128 * 2


@pytest.mark.parametrize("slug", ["qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "gpt-oss-120b"])
def test_hf_fixture_matches_catalog(slug):
    fixture = HF / f"{slug}.json"
    imported = workload_from_hf_config(json.loads(fixture.read_text()), file=str(fixture))
    catalog = load_workload(slug)
    assert imported.attention == catalog.attention
    assert imported.moe == catalog.moe
    assert (imported.hidden_size, imported.num_layers, imported.vocab_size) == (
        catalog.hidden_size, catalog.num_layers, catalog.vocab_size)
    assert params_total(imported) == params_total(catalog)
    assert params_active(imported) == params_active(catalog)


def test_graph_qwen3_30b_a3b_decode_batch_8(capsys):
    code = main(["graph", "--workload", "qwen3-30b-a3b", "--phase", "decode", "--batch", "8",
                 "--format", "json"])
    assert code == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    batch, ctx, layers = 8, 1024, 48
    # KV read: every cached token of every request, all layers: 2 x 4 KV heads x 128 x 2 bytes each
    assert totals["bytes_kv_read"] == batch * ctx * layers * 2 * 4 * 128 * 2
    # decode FLOPs per token ~ 2 x active weights touched (no input-embedding GEMM) + attention
    # 4 x layers x (context + the new token) x heads x head_dim; elementwise ops add well under 1%
    model = load_workload("qwen3-30b-a3b")
    matmul = 2 * (params_active(model) - QWEN_VOCAB * 2048)
    attention = 4 * layers * (ctx + 1) * 32 * 128
    assert totals["flops"] == pytest.approx(batch * (matmul + attention), rel=0.01)
    # weights streamed: at least the per-token active set, at most the whole model (bf16)
    assert 2 * (params_active(model) - QWEN_VOCAB * 2048) <= totals["bytes_weight"] <= 2 * params_total(model)


# --- Cosmos-Predict1-7B-Text2World --------------------------------------------------------------

COSMOS = "cosmos-predict1-7b-text2world"


def test_cosmos_dit_hand_count():
    # From cosmos_predict1/diffusion/networks/general_dit.py and module/blocks.py with FADITV2Config
    # (model_channels 4096, 28 blocks "FA-CA-MLP", 32 heads, mlp_ratio 4, crossattn_emb_channels 1024,
    # adaln_lora_dim 256, concat_padding_mask) and the Text2World extra learnable position tables.
    # Every Linear is bias-free.
    d, heads, hd, r = 4096, 32, 128, 256
    a = heads * hd
    self_attn = 3 * d * a + a * d + 2 * hd  # q/k per-head RMSNorm ("RRI")
    cross_attn = d * a + 2 * 1024 * a + a * d + 2 * hd
    mlp = d * 4 * d + 4 * d * d  # GPT2FeedForward, GELU
    adaln = 3 * (d * r + r * 3 * d)  # one AdaLN-LoRA (d -> r -> 3d) per sub-block
    block = self_attn + cross_attn + mlp + adaln
    patch = (16 + 1) * 1 * 2 * 2 * d  # latent channels + padding mask, patch (1, 2, 2)
    pos = (128 + 240 // 2 + 240 // 2) * d  # LearnablePosEmbAxis: len_t 128, len_h = len_w = 240 / 2
    t_embed = d * d + d * 3 * d + d  # Linear(4096, 4096), Linear(4096, 3 x 4096), affine RMSNorm
    final = d * (2 * 2 * 1 * 16) + d * r + r * 2 * d  # proj to patch x 16 channels + LoRA shift/scale
    expected = 28 * block + patch + pos + t_embed + final
    model = load_workload(COSMOS)
    assert dit_params(model) == expected == 7_236_192_256
    assert params_total(model) == params_active(model) == expected


def test_cosmos_rounds_to_published_7b():
    # Published as a 7B model (Cosmos-1.0-Diffusion-7B, arXiv 2501.03575; Cosmos-Predict1-7B model card):
    # a figure rounded to one significant digit, so the count must lie in [6.5B, 7.5B). It is 7.236B,
    # 3.4% above the nominal 7B.
    count = dit_params(load_workload(COSMOS))
    assert 6.5e9 <= count < 7.5e9
    assert round(count / 1e9) == 7


def test_cosmos_latent_and_tokens_at_defaults():
    model = load_workload(COSMOS)
    dflt = model.defaults
    assert (dflt.frames, dflt.height, dflt.width, dflt.steps, dflt.cfg) == (121, 704, 1280, 35, True)
    # 121 frames through a causal 8x temporal, 8x8 spatial tokenizer: 1 + 120 / 8 = 16 latent frames of
    # 88 x 160; the Text2World experiment config states latent_shape [16, 16, 88, 160]
    assert latent_shape(model, 121, 704, 1280) == (16, 88, 160)
    assert dit_tokens(model, 121, 704, 1280) == 16 * 44 * 80 == 56_320


def test_cosmos_text_encoder_t5_11b():
    # T5-11B encoder (Raffel et al. 2020): d_model 1024, 24 layers, 128 heads of 128, ReLU d_ff 65,536,
    # vocabulary 32,128; plus T5's relative-position bias table (32 buckets x 128 heads), which the
    # closed form leaves out
    d, inner, ff = 1024, 128 * 128, 65536
    layer = 4 * d * inner + 2 * d * ff + 2 * d
    hand = 32128 * d + 24 * layer + d + 32 * 128
    assert text_encoder_params(load_workload(COSMOS)) == pytest.approx(hand, rel=1e-5)


def _factorized_res_block(cin, cout):
    # (1,3,3) then (3,1,1) conv, twice; a 1x1 shortcut when the width changes
    return 9 * cin * cout + 3 * cout * cout + 12 * cout * cout + (cin * cout if cin != cout else 0)


def test_cosmos_decoder_flops_match_documented_derivation():
    # DecoderFactorized for continuous_video (channels 128, mult [2, 4, 4], 2 res blocks, Haar patch 4):
    # MAC per output pixel-frame, each term over its positions per output pixel-frame
    c4, c2 = 512, 256
    latent = (16 * 16 + 9 * 16 * c4 + 3 * c4 * c4  # post_quant_conv, conv_in
              + 2 * _factorized_res_block(c4, c4) + 2 * 4 * c4 * c4  # mid blocks, spatial + temporal attn
              + 6 * _factorized_res_block(c4, c4))  # levels 2 and 1, three blocks each
    upsample = 3 * c4 * c4 / 256 + (9 * c4 * c4 + c4 * c4) / 64
    level0 = (_factorized_res_block(c4, c2) + 2 * _factorized_res_block(c2, c2)
              + 9 * c2 * 192 + 3 * 192 * 192) / 64  # conv_out to 3 x 4^3 wavelet channels
    attention = 2 * 88 * 160 * c4 / 512  # mid spatial attention products at the default 88 x 160 latent
    macs = latent / 512 + upsample + level0 + attention
    vae = load_workload(COSMOS).vae
    assert vae.decoder_flops_per_pixel == pytest.approx(2 * macs, rel=1e-9)
    assert "erived" in vae.decoder_flops_source and "estimate" in vae.decoder_flops_source
    assert (vae.temporal_compression, vae.spatial_compression, vae.latent_channels) == (8, 8, 16)


def test_cosmos_decoder_params_recount():
    # weights + biases of every conv (CausalConv3d keeps nn.Conv3d's bias), GroupNorm(1, C) affine pairs
    def conv(cin, cout, taps):
        return cin * cout * taps + cout

    def block(cin, cout):
        p = 2 * cin + conv(cin, cout, 9) + conv(cout, cout, 3) + 2 * cout + conv(cout, cout, 9) + conv(cout, cout, 3)
        return p + (conv(cin, cout, 1) if cin != cout else 0)

    attn = 2 * 512 + 4 * conv(512, 512, 1)
    total = (conv(16, 16, 1) + conv(16, 512, 9) + conv(512, 512, 3) + 8 * block(512, 512) + 2 * attn
             + conv(512, 512, 3) + conv(512, 512, 9) + conv(512, 512, 1)
             + block(512, 256) + 2 * block(256, 256) + 2 * 256 + conv(256, 192, 9) + conv(192, 192, 3))
    assert load_workload(COSMOS).vae.decoder_params == total


def test_graph_cosmos_video_runs(capsys):
    assert main(["graph", "--workload", COSMOS, "--phase", "video", "--format", "json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    model = load_workload(COSMOS)
    pixels = 121 * 704 * 1280
    # the DiT's weight GEMMs alone: 2 FLOP x weights x tokens x 2 (CFG) x 35 steps is a lower bound
    dit_matmul = 2 * 28 * (4 * 4096**2 + 2 * 4096**2 + 2 * 4 * 4096**2) * 56_320 * 2 * 35
    assert totals["flops"] > dit_matmul + pixels * model.vae.decoder_flops_per_pixel


@pytest.mark.parametrize(("slug", "layers", "experts", "total", "active"),
                         [("gpt-oss-120b", 36, 128, 116.83e9, 5.13e9), ("gpt-oss-20b", 24, 32, 20.91e9, 3.61e9)])
def test_gpt_oss_counts_by_hand_and_against_the_model_card(slug, layers, experts, total, active):
    """config.json: hidden 2880, 64 q / 8 kv heads of 64, biases on q, k, v, o; SwiGLU experts 2880 wide,
    top-4, router with bias; vocab 201088, untied. Model card Table 1 (arXiv 2508.10925): 116.83B / 5.13B
    and 20.91B / 3.61B, the active count without the input embedding. The experts' own biases (40M / 7M)
    are not counted, so the totals sit 0.03-0.04% low."""
    h, q, kv = 2880, 64 * 64, 8 * 64
    attention = 2 * h * q + 2 * h * kv + (q + 2 * kv + h)  # q, o; k, v; biases
    expert = 3 * h * 2880
    router = h * experts + experts
    norms = 2 * h
    per_layer_fixed = attention + router + norms
    vocab = 201088 * h
    by_hand = layers * (per_layer_fixed + experts * expert) + 2 * vocab + h
    by_hand_active = layers * (per_layer_fixed + 4 * expert) + vocab + h
    model = load_workload(slug)
    assert params_total(model) == pytest.approx(by_hand, rel=1e-6)
    assert params_total(model) == pytest.approx(total, rel=1e-3)
    assert params_active(model, include_input_embedding=False) == pytest.approx(by_hand_active, rel=1e-6)
    assert params_active(model, include_input_embedding=False) == pytest.approx(active, rel=1e-3)
    assert model.attention.sliding_window == 128 and model.attention.sliding_window_layers == layers // 2
