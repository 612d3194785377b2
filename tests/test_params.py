"""Parameter counts and KV-cache sizes against published figures and hand calculations."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.errors import CosimInputError
from cosim.specs.loader import load_workload
from cosim.specs.workload import DecoderLM
from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total
from cosim.workloads.video import dit_params, dit_tokens, latent_shape

# (slug, published total, published active or None). Sources:
PUBLISHED = [
    ("llama-3.1-8b", 8.03e9, None),  # HF safetensors count, meta-llama/Llama-3.1-8B
    ("llama-3.1-70b", 70.6e9, None),  # HF safetensors count, meta-llama/Llama-3.1-70B
    ("llama-3.1-405b", 405.9e9, None),  # Llama 3.1 405B model card / HF count (406B)
    ("llama-3.3-70b", 70.6e9, None),  # HF safetensors count, meta-llama/Llama-3.3-70B-Instruct
    ("llama-2-7b", 6.74e9, None),  # HF safetensors count, meta-llama/Llama-2-7b-hf
    ("llama-2-13b", 13.0e9, None),  # HF safetensors count, meta-llama/Llama-2-13b-hf
    ("llama-2-70b", 69.0e9, None),  # HF safetensors count, meta-llama/Llama-2-70b-hf
    ("mixtral-8x7b", 46.7e9, 12.9e9),  # Mistral AI "Mixtral of experts" (2023-12-11)
    ("mixtral-8x22b", 141e9, 39e9),  # Mistral AI "Cheaper, Better, Faster, Stronger" (2024-04-17)
    ("qwen3-235b-a22b", 235e9, 22e9),  # Qwen3-235B-A22B model card
    ("deepseek-v3", 671e9, None),  # DeepSeek-V3 technical report, arXiv 2412.19437 (active: see below)
    ("deepseek-r1", 671e9, None),  # DeepSeek-R1 model card (same architecture as V3)
    ("gpt-j-6b", 6.053381344e9, None),  # EleutherAI/gpt-j-6b model card, "Number of parameters"
]


@pytest.mark.parametrize(("slug", "total", "active"), PUBLISHED)
def test_published_totals_within_one_percent(slug, total, active):
    model = load_workload(slug)
    assert params_total(model) == pytest.approx(total, rel=0.01)
    if active is not None:
        assert params_active(model) == pytest.approx(active, rel=0.01)
    else:
        assert params_active(model) <= params_total(model)


@pytest.mark.parametrize("slug", ["deepseek-v3", "deepseek-r1"])
def test_deepseek_active_in_deepseeks_convention(slug):
    # DeepSeek-V3 README_WEIGHTS.md: "Activation parameters: 36.6B (including 0.9B for the output Head)",
    # i.e. without the input embedding; the report's abstract rounds it to 37B.
    model = load_workload(slug)
    active = params_active(model, include_input_embedding=False)
    assert active == pytest.approx(36.6e9, rel=0.01)
    assert 36.5e9 <= active < 37.5e9
    # the input embedding is exactly what separates the two conventions
    assert params_active(model) - active == 129280 * 7168


def test_gpt_j_hand_count():
    # 28 layers x (4 unbiased 4096^2 projections + fc_in/fc_out with biases + one LayerNorm)
    # + wte + lm_head with bias + ln_f
    layer = 4 * 4096**2 + (4096 * 16384 + 16384) + (16384 * 4096 + 4096) + 2 * 4096
    expected = 28 * layer + 50400 * 4096 + (50400 * 4096 + 50400) + 2 * 4096
    assert params_total(load_workload("gpt-j-6b")) == expected


def test_mixtral_active_hand_count():
    # per layer: q,o 4096^2 each; k,v 4096x1024 each; 2 of 8 SwiGLU experts; router; 2 RMSNorms
    att = 2 * 4096**2 + 2 * 4096 * 1024
    expert = 3 * 4096 * 14336
    layer = att + 2 * expert + 4096 * 8 + 2 * 4096
    expected = 32 * layer + 2 * 32000 * 4096 + 4096
    assert params_active(load_workload("mixtral-8x7b")) == expected


def test_kv_bytes_per_token_gqa():
    # 2 (K and V) x 80 layers x 8 KV heads x 128 head dim x 2 bytes (bf16)
    assert kv_cache_bytes_per_token(load_workload("llama-3.1-70b"), 2.0) == 327_680
    assert kv_cache_bytes_per_token(load_workload("llama-3.1-8b"), 2.0) == 2 * 32 * 8 * 128 * 2


def test_kv_bytes_per_token_mla():
    # MLA caches the 512-wide latent plus the 64-wide rope key per layer: 61 x (512 + 64) x bytes
    model = load_workload("deepseek-v3")
    assert kv_cache_bytes_per_token(model, 2.0) == 61 * (512 + 64) * 2
    assert kv_cache_bytes_per_token(model, 1.0) == 61 * 576


# --- video DiTs ---------------------------------------------------------------------------------

# Tensor-element counts of the published DiT checkpoints (sum over the safetensors headers, as tallied
# by third-party tools; see each YAML's notes), and the nominal size each model is published under.
VIDEO = [
    ("wan2.1-t2v-14b", 14_288_491_584, (13.5e9, 14.5e9)),  # nominal "14B"
    ("wan2.1-t2v-1.3b", 1_418_996_800, None),  # nominal "1.3B" understates the checkpoint (1.42B)
    ("hunyuanvideo", 12_821_012_544, (12.5e9, 13.5e9)),  # nominal "13B" (report: "over 13 billion")
    ("cogvideox-5b", 5_570_283_072, None),  # nominal "5B"; full fine-tune logs 5,570,283,072 trainable
]


@pytest.mark.parametrize(("slug", "checkpoint", "nominal"), VIDEO)
def test_video_dit_params_match_checkpoint(slug, checkpoint, nominal):
    model = load_workload(slug)
    assert dit_params(model) == pytest.approx(checkpoint, rel=0.01)
    assert params_total(model) == dit_params(model)
    if nominal:
        assert nominal[0] <= dit_params(model) < nominal[1]


def test_open_sora_2_hand_count():
    # Flux-shaped MMDiT from configs/diffusion/inference/256px.py: d 3072, mlp 4d, 19 double + 38 single
    # blocks, qkv_bias, per-head RMS q/k norms (128 each), T5 4096 -> d, CLIP 768 -> MLP embedder,
    # img_in 64 -> d, cond_in 68 -> d, time MLP 256 -> d -> d, final Linear(d, 64) + adaLN Linear(d, 2d).
    d, m = 3072, 12288

    def lin(i, o):
        return i * o + o

    stream = lin(d, 6 * d) + lin(d, 3 * d) + 256 + lin(d, d) + lin(d, m) + lin(m, d)
    single = lin(d, 3 * d + m) + lin(d + m, d) + 256 + lin(d, 3 * d)
    embed = lin(64, d) + lin(68, d) + lin(4096, d) + lin(768, d) + lin(d, d) + lin(256, d) + lin(d, d)
    final = lin(d, 64) + lin(d, 2 * d)
    expected = 19 * 2 * stream + 38 * single + embed + final
    assert dit_params(load_workload("open-sora-2")) == expected


def test_latent_shape_and_tokens():
    wan = load_workload("wan2.1-t2v-14b")
    # 81 frames: 1 + 80 // 4 = 21 latent frames; 480x832 / 8 = 60x104; patch (1, 2, 2) -> 21 x 30 x 52
    assert latent_shape(wan, 81, 480, 832) == (21, 60, 104)
    assert dit_tokens(wan, 81, 480, 832) == 21 * 30 * 52 == 32_760
    hunyuan = load_workload("hunyuanvideo")
    # 129 frames -> 33 latent frames; 720x1280 -> 90x160 -> 45x80 patches
    assert dit_tokens(hunyuan, 129, 720, 1280) == 33 * 45 * 80 == 118_800
    cog = load_workload("cogvideox-5b")
    assert dit_tokens(cog, 49, 480, 720) == 13 * 30 * 45


def test_latent_shape_rejects_bad_resolution():
    wan = load_workload("wan2.1-t2v-1.3b")
    with pytest.raises(CosimInputError, match="spatial compression"):
        latent_shape(wan, 81, 481, 832)
    with pytest.raises(CosimInputError):
        dit_tokens(wan, 0, 480, 832)


@settings(max_examples=50, deadline=None)
@given(frames=st.integers(1, 400), tc=st.sampled_from([1, 2, 4, 8]))
def test_causal_latent_frames_property(frames, tc):
    wan = load_workload("wan2.1-t2v-1.3b")
    model = wan.model_copy(update={"vae": wan.vae.model_copy(update={"temporal_compression": tc})})
    t, _, _ = latent_shape(model, frames, 480, 832)
    # the first frame is coded alone; each later latent frame covers tc frames
    assert 1 + (t - 1) * tc <= frames < 1 + t * tc


def test_wan_vae_decoder_flops_match_documented_derivation():
    # Recount the Wan-VAE decoder convolutions (MAC per output pixel-frame) by hand: each term is
    # taps x Cin x Cout / (positions reduction at that stage).
    res = 2 * 27 * 384 * 384
    stage0 = 3 * res / 256 + 3 * 384 * 768 / 256 + 9 * 384 * 192 / 32
    stage1 = (27 * 192 * 384 + 27 * 384 * 384 + 192 * 384 + 2 * res) / 32 + 3 * 384 * 768 / 32 + 9 * 384 * 192 / 4
    stage2 = 3 * 2 * 27 * 192 * 192 / 4 + 9 * 192 * 96
    stage3 = 3 * 2 * 27 * 96 * 96
    macs = 27 * 16 * 384 / 256 + (2 * res + 4 * 384 * 384) / 256 + stage0 + stage1 + stage2 + stage3 + 27 * 96 * 3
    assert load_workload("wan2.1-t2v-14b").vae.decoder_flops_per_pixel == pytest.approx(2 * macs, rel=1e-12)


# --- invariants ---------------------------------------------------------------------------------

def _model(h_heads, kv, layers, inter, vocab, experts, k, tie):
    heads, head_dim = h_heads
    data = {
        "family": "moe" if experts else "dense", "name": "prop", "display_name": "prop",
        "source": {"title": "hypothesis"}, "hidden_size": heads * head_dim, "num_layers": layers,
        "vocab_size": vocab, "tie_word_embeddings": tie,
        "attention": {"num_heads": heads, "num_kv_heads": kv, "head_dim": head_dim},
        "mlp": {"intermediate_size": inter},
    }
    if experts:
        data["moe"] = {"num_experts": experts, "experts_per_token": min(k, experts), "expert_intermediate_size": inter}
    return DecoderLM.model_validate(data)


@settings(max_examples=60, deadline=None)
@given(
    h_heads=st.tuples(st.sampled_from([8, 16, 32]), st.sampled_from([32, 64, 128])),
    kv_div=st.sampled_from([1, 2, 4, 8]),
    layers=st.integers(1, 96),
    inter=st.integers(64, 30000),
    vocab=st.integers(100, 200000),
    experts=st.integers(0, 64),
    k=st.integers(1, 8),
    tie=st.booleans(),
)
def test_param_invariants(h_heads, kv_div, layers, inter, vocab, experts, k, tie):
    kv = h_heads[0] // kv_div if h_heads[0] % kv_div == 0 else h_heads[0]
    model = _model(h_heads, kv, layers, inter, vocab, experts, k, tie)
    total, active = params_total(model), params_active(model)
    assert 0 < active <= total
    assert params_active(model, include_input_embedding=False) <= active
    h = model.hidden_size
    if not tie:  # untying adds exactly one vocab x hidden matrix
        tied = model.model_copy(update={"tie_word_embeddings": True})
        assert total - params_total(tied) == vocab * h
    if experts:  # each extra expert adds one SwiGLU expert and one router column per layer
        more = model.model_copy(update={"moe": model.moe.model_copy(update={"num_experts": experts + 1})})
        assert params_total(more) - total == layers * (3 * h * inter + h)
