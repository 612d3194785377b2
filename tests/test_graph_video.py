"""Video DiT graphs: latent token count, per-step FLOPs against a hand-derived closed form, CFG, SP."""

from __future__ import annotations

import numpy as np
import pytest
from test_graph_decoder import named
from test_graph_specs import WAN_14B, load

from cosim.graph import build_graph, video_graph
from cosim.graph.optable import OpKind, Stage
from cosim.specs.loader import list_slugs, load_workload
from cosim.specs.scenario import Parallelism, Scenario
from cosim.specs.workload import VideoDiT
from cosim.workloads.video import dit_params

N_WAN = 21 * 60 * 104 // (1 * 2 * 2)  # 81 frames -> 1 + 80/4 latent frames; 480/8 x 832/8; patch (1, 2, 2)


def vscen(**kw) -> Scenario:
    par = Parallelism(**{k: kw.pop(k) for k in ("tp", "sp", "dp", "pp", "sp_kind") if k in kw})
    return Scenario(phase="video", parallelism=par, **kw)


def dit_matmul_flops(table) -> float:
    mask = (table.stage == int(Stage.DIT)) & np.isin(table.kind, [int(OpKind.GEMM), int(OpKind.ATTENTION)])
    return float(np.sum(table.flops[mask] * table.repeat[mask]))


def test_wan_latent_tokens():
    assert N_WAN == 32_760
    t = video_graph(load(WAN_14B), vscen())
    self_attn = t.select(np.array([n == "block.self.attention" for n in t.name]))
    assert self_attn.q_len[0] == N_WAN and self_attn.kv_len[0] == N_WAN and self_attn.causal[0] == 0


def wan_step_flops(B: int, N: int = N_WAN) -> float:
    """One Wan2.1-14B DiT forward, matmuls only, derived from the Wan2.1 model code by hand."""
    h, ff, L, Lt, text_dim, freq = 5120, 13824, 40, 512, 4096, 256
    block = (2 * B * N * h * (3 * h + h)        # self-attention q, k, v, o
             + 2 * B * N * h * (2 * h)          # cross-attention q and o on the video tokens
             + 2 * B * Lt * h * (2 * h)         # cross-attention k and v on the text tokens
             + 2 * B * N * (2 * h * ff)         # FFN up and down
             + 4 * B * N * N * h                # self-attention QK^T and PV
             + 4 * B * N * Lt * h)              # cross-attention QK^T and PV
    extras = (2 * B * N * 16 * 4 * h            # patch embedding (16 latent channels x 1 x 2 x 2)
              + 2 * B * Lt * (text_dim * h + h * h)  # text projection (two linears)
              + 2 * B * (freq * h + h * h)      # timestep embedder
              + 2 * B * h * 6 * h               # shared modulation projection
              + 2 * B * N * h * 4 * 16)         # final projection to patches
    return L * block + extras


def test_wan_dit_flops_per_step_closed_form():
    model = load(WAN_14B)
    t = video_graph(model, vscen(batch=1))  # CFG on: two samples per forward
    assert dit_matmul_flops(t) / 50 == pytest.approx(wan_step_flops(2), rel=1e-12)
    # the headline form: 2 x DiT params x tokens, except that cross-attention k/v run on the 512 text
    # tokens; + 4 N^2 h L (self) + 4 N Lt h L (cross); embeddings/biases make up the last percent
    h, L, Lt = 5120, 40, 512
    kv = L * 2 * (h * h + h)
    headline = 2 * (2 * (dit_params(model) - kv) * N_WAN + 2 * kv * Lt + 4 * N_WAN**2 * h * L + 4 * N_WAN * Lt * h * L)
    assert t.total("flops") / 50 == pytest.approx(headline, rel=0.01)


def test_cfg_doubles_the_dit_and_text_encoder_not_the_vae():
    model = load(WAN_14B)
    on = video_graph(model, vscen(cfg=True))
    off = video_graph(model, vscen(cfg=False))
    for stage in (Stage.DIT, Stage.TEXT_ENCODER):
        mask_on, mask_off = on.stage == int(stage), off.stage == int(stage)
        assert on.select(mask_on).total("flops") == pytest.approx(2 * off.select(mask_off).total("flops"), rel=1e-12)
    assert named(on, "vae") == named(off, "vae") > 0


def test_steps_multiply_the_dit_only():
    model = load(WAN_14B)
    ten, twenty = video_graph(model, vscen(steps=10)), video_graph(model, vscen(steps=20))
    assert dit_matmul_flops(twenty) == pytest.approx(2 * dit_matmul_flops(ten), rel=1e-12)
    assert named(twenty, "text_encoder") == named(ten, "text_encoder")


@pytest.mark.parametrize("sp_kind", ["ulysses", "ring"])
def test_sp_splits_video_attention(sp_kind):
    model = load(WAN_14B)
    one = video_graph(model, vscen())
    eight = video_graph(model, vscen(sp=8, sp_kind=sp_kind))
    assert named(eight, "block.self.attention") * 8 == pytest.approx(named(one, "block.self.attention"), rel=1e-12)
    assert named(eight, "block.ffn.up_proj") * 8 == pytest.approx(named(one, "block.ffn.up_proj"), rel=1e-12)
    assert eight.total("comm_bytes") > 0


def test_tp_splits_dit_heads_and_errors_when_it_cannot(capsys):
    from cosim.cli.main import main

    model = load(WAN_14B)
    one, eight = video_graph(model, vscen()), video_graph(model, vscen(tp=8))
    assert named(eight, "block.self.attention") * 8 == pytest.approx(named(one, "block.self.attention"), rel=1e-12)
    assert main(["graph", "--workload", "wan2.1-t2v-14b", "--phase", "video", "--tp", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "parallelism.tp" in err


def test_every_catalog_workload_builds():
    """Smoke: every catalog model builds in each of its phases with finite, non-negative columns."""
    for slug in list_slugs("workloads"):
        model = load_workload(slug)
        phases = ["video"] if isinstance(model, VideoDiT) else ["prefill", "decode", "generate", "train"]
        for phase in phases:
            t = build_graph(model, Scenario(phase=phase, batch=2, input_len=256, steps=2))
            assert len(t) > 0 and t.total("flops") > 0, (slug, phase)
            for col in ("flops", "bytes_weight", "bytes_act_in", "bytes_kv_read", "comm_bytes", "repeat"):
                values = getattr(t, col)
                assert np.isfinite(values).all() and (values >= 0).all(), (slug, phase, col)
