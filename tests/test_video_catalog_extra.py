"""Video catalog additions: Wan2.2 T2V-A14B (two denoiser experts), Wan2.2 TI2V-5B (16x VAE), Wan2.1 I2V-14B
(image tokens in the cross-attention), CogVideoX-2B and CogVideoX1.5-5B; and the reference rows they map."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from test_graph_video import dit_matmul_flops, vscen, wan_step_flops

from cosim.engines.memory import params_per_chip
from cosim.graph import video_graph
from cosim.specs.loader import load_workload
from cosim.specs.workload import VideoDiT
from cosim.validate.mapping import load_mapping
from cosim.workloads.params import params_active, params_total
from cosim.workloads.video import dit_params, dit_tokens, latent_shape

NEW = ["wan2.2-t2v-a14b", "wan2.2-ti2v-5b", "wan2.1-i2v-14b", "cogvideox-2b", "cogvideox1.5-5b"]

WAN14_CHECKPOINT = 14_288_491_584  # tensor elements of the Wan2.1-T2V-14B DiT (= one Wan2.2 A14B expert)
COG5B_CHECKPOINT = 5_570_283_072  # CogVideoX-5B transformer, trainable parameters of a full fine-tune

MAPPED = [
    "wan2.1-i2v-14b-720P-h800-x1", "wan2.1-i2v-14b-720P-h800-x8", "wan2.2-t2v-a14b-720P-h100-x4",
    "wan2.2-t2v-a14b-480P-h100-x1", "wan2.2-t2v-a14b-480P-h100-x8", "wan2.2-t2v-a14b-720P-a100-x8",
    "wan2.2-t2v-a14b-720P-h20-x8", "cogvideox-cogvideox-2b-h100", "cogvideox-cogvideox1.5-5b-h100",
]
LEFT_UNMAPPED = ["wan2.2-t2v-a14b-720P-h20-x1", "wan2.2-ti2v-5b-720P-rtx4090-x1"]


@pytest.mark.parametrize("slug", NEW)
def test_new_specs_load_with_sources(slug):
    model = load_workload(slug)
    assert isinstance(model, VideoDiT) and model.name == slug
    assert model.source.title and model.source.url.startswith("https://")
    assert "erived" in model.vae.decoder_flops_source or "figure" in model.vae.decoder_flops_source
    assert model.published_params_total or "published" in (model.notes or "")


# (slug, published DiT tensor elements held, nominal size range); sources in each YAML's notes
PUBLISHED = [
    ("wan2.2-t2v-a14b", 2 * WAN14_CHECKPOINT, None),  # two 14,288,491,584-element experts ("27B total")
    ("wan2.2-ti2v-5b", 4_999_787_712, (4.5e9, 5.5e9)),  # index total_size 19,999,150,848 B of F32 / 4
    ("wan2.1-i2v-14b", 16_394_878_784, None),  # third-party tally of a checkpoint of this architecture
    ("cogvideox-2b", 1_693_783_872, (1.5e9, 2.5e9)),  # third-party tally of zai-org/CogVideoX-2b
]


@pytest.mark.parametrize(("slug", "published", "nominal"), PUBLISHED)
def test_params_match_published(slug, published, nominal):
    model = load_workload(slug)
    assert model.published_params_total == published
    assert params_total(model) == pytest.approx(published, rel=0.01)
    if nominal:
        assert nominal[0] <= params_total(model) < nominal[1]


def test_a14b_holds_two_experts_and_runs_one():
    a14b, wan21 = load_workload("wan2.2-t2v-a14b"), load_workload("wan2.1-t2v-14b")
    assert a14b.num_denoiser_experts == 2 and wan21.num_denoiser_experts == 1
    assert params_active(a14b) == WAN14_CHECKPOINT  # "14B active" per step
    assert params_total(a14b) == 2 * WAN14_CHECKPOINT  # README: "27B total" (nominal)
    # the extra expert's weights are held on every chip (no TP): exactly one more DiT than Wan2.1-14B
    sc = vscen(batch=1, frames=81, height=720, width=1280, steps=40)
    assert params_per_chip(a14b, sc) - params_per_chip(wan21, sc) == WAN14_CHECKPOINT


@pytest.mark.parametrize(("height", "width"), [(480, 832), (720, 1280)])
def test_a14b_step_flops_equal_wan21_14b(height, width):
    # 81 frames -> 21 latent frames; /8 spatial, (1, 2, 2) patch
    n = 21 * (height // 16) * (width // 16)
    sc = vscen(batch=1, frames=81, height=height, width=width, steps=40)
    a14b = video_graph(load_workload("wan2.2-t2v-a14b"), sc)
    wan21 = video_graph(load_workload("wan2.1-t2v-14b"), sc)
    assert dit_matmul_flops(a14b) / 40 == pytest.approx(wan_step_flops(2, n), rel=1e-12)  # CFG: 2 samples
    assert dit_matmul_flops(a14b) == pytest.approx(dit_matmul_flops(wan21), rel=1e-12)


def test_ti2v_5b_latent_geometry():
    model = load_workload("wan2.2-ti2v-5b")
    # Wan2.2 VAE: vae_stride (4, 16, 16), z_dim 48; patch (1, 2, 2): one token per 32 x 32 pixels x 4 frames
    assert (model.vae.temporal_compression, model.vae.spatial_compression, model.vae.latent_channels) == (4, 16, 48)
    assert latent_shape(model, 121, 704, 1280) == (1 + 120 // 4, 704 // 16, 1280 // 16) == (31, 44, 80)
    assert dit_tokens(model, 121, 704, 1280) == (1 + 120 // 4) * (704 // 32) * (1280 // 32) == 27_280


def test_ti2v_5b_hand_count():
    # config: dim 3072, ffn 14336, 30 layers, in/out 48, freq 256, text 4096, patch (1, 2, 2), qk RMSNorm over
    # the full width, affine cross-attention LayerNorm, Wan shared modulation (6 x d table per block)
    d, f, L = 3072, 14336, 30

    def lin(i, o):
        return i * o + o

    block = 4 * lin(d, d) + 2 * d + 4 * lin(d, d) + 2 * d + lin(d, f) + lin(f, d) + 2 * d + 6 * d
    embed = lin(48 * 4, d) + lin(4096, d) + lin(d, d) + lin(256, d) + lin(d, d) + lin(d, 6 * d)
    head = lin(d, 4 * 48) + 2 * d
    assert dit_params(load_workload("wan2.2-ti2v-5b")) == L * block + embed + head == 4_999_787_712


def test_i2v_14b_image_conditioning_weights():
    # over the T2V-14B DiT (d 5120): per block k_img, v_img Linear(d, d) + norm_k_img RMSNorm(d); patch
    # embedding 36 instead of 16 input channels x 1 x 2 x 2; img_emb MLPProj(1280, d): LayerNorm(1280),
    # Linear(1280, 1280), GELU, Linear(1280, d), LayerNorm(d)
    d, e = 5120, 1280
    extra = 40 * (2 * (d * d + d) + d) + (36 - 16) * 4 * d + (2 * e + e * e + e + e * d + d + 2 * d)
    assert extra == 2_106_387_200
    i2v, t2v = load_workload("wan2.1-i2v-14b"), load_workload("wan2.1-t2v-14b")
    assert dit_params(i2v) - dit_params(t2v) == extra
    # the Comfy-Org BF16 repackage of Wan2.1-I2V-14B-720P is 32.8 GB (2 bytes per weight)
    assert dit_params(i2v) == pytest.approx(32.8e9 / 2, rel=0.005)


def test_i2v_14b_step_flops_over_t2v():
    sc = vscen(batch=1, frames=81, height=720, width=1280, steps=40)
    i2v = video_graph(load_workload("wan2.1-i2v-14b"), sc)
    t2v = video_graph(load_workload("wan2.1-t2v-14b"), sc)
    B, N, Li, h, e, L = 2, 21 * 45 * 80, 257, 5120, 1280, 40  # CFG: two samples per forward
    per_step = (L * (2 * B * Li * h * 2 * h      # k_img, v_img on the image tokens
                     + 4 * B * N * Li * h)      # image cross-attention QK^T and PV
                + 2 * B * Li * (e * e + e * h)  # img_emb MLPProj linears
                + 2 * B * N * (36 - 16) * 4 * h)  # the wider patch embedding
    assert (dit_matmul_flops(i2v) - dit_matmul_flops(t2v)) / 40 == pytest.approx(per_step, rel=1e-12)
    names = set(i2v.name)
    assert {"block.cross.img_kv_proj", "block.cross.img_attention", "img_emb.fc1"} <= names
    assert not any(n.startswith(("img_emb", "block.cross.img")) for n in t2v.name)


def test_cogvideox_2b_and_15_geometry_and_counts():
    two, one5 = load_workload("cogvideox-2b"), load_workload("cogvideox1.5-5b")
    assert (two.dit.hidden_size, two.dit.num_layers, two.dit.mlp.intermediate_size) == (30 * 64, 30, 4 * 30 * 64)
    # 1.5: 81 frames -> 21 latent frames, padded to 22 for the temporal patch of 2 -> 11; 768x1360 / 8 / 2
    assert dit_tokens(one5, 81, 768, 1360) == 11 * 48 * 85 == 44_880
    # CogVideoX-5B plus a Linear(16 x 2 x 2 x 2, 3072) patch embedding instead of Conv2d(16, 3072, 2), and
    # proj_out to 2 x 2 x 2 x 16 instead of 2 x 2 x 16 outputs (biases on both)
    d = 3072
    delta = (128 * d + d - (16 * 4 * d + d)) + (d * 128 + 128 - (d * 64 + 64))
    assert dit_params(one5) == COG5B_CHECKPOINT + delta == 5_570_676_352


def test_image_tokens_need_cross_attention_and_embedder():
    data = yaml.safe_load(Path("workloads/wan2.1-i2v-14b.yaml").read_text())
    del data["dit"]["image_embed_dim"]
    with pytest.raises(ValueError, match="image_context_tokens"):
        VideoDiT(**data)


def test_rows_mapped_and_left_unmapped():
    mapping = load_mapping()
    for row_id in MAPPED:
        assert row_id in mapping.rows and row_id not in mapping.unmapped
    for row_id in LEFT_UNMAPPED:
        assert row_id not in mapping.rows and "offload" in mapping.unmapped[row_id]
    q = mapping.rows["wan2.2-t2v-a14b-720P-h100-x4"]
    assert (q.workload, q.chips, q.sp, q.steps, q.frames, q.height, q.width) == (
        "wan2.2-t2v-a14b", 4, 4, 40, 81, 720, 1280)


@pytest.mark.parametrize("row_id", MAPPED)
def test_mapped_rows_predict_a_finite_time(row_id):
    from cosim.engines.calibration import apply_stack, calibrated_params, is_moe, stack_scale
    from cosim.specs.loader import load_hardware
    from cosim.validate.predict import predict

    mapping = load_mapping()
    q = mapping.rows[row_id]
    hw = load_hardware(q.hardware)
    params = apply_stack(calibrated_params(hw), stack_scale(q.stack, q.hardware, is_moe(load_workload(q.workload))))
    value, reason = predict(q, mapping, params)
    assert reason is None and value is not None and math.isfinite(value) and value > 0
