"""Image prompts of a multimodal LM (Gemma 3's SigLIP encoder): parameters, FLOPs, memory, errors, mapping.

Counts are written out by hand from the published config (vision_config: 27 layers, width 1,152, MLP 4,304,
16 heads, 14-pixel patches of an 896 x 896 image, 256 tokens per image) and compared with the Gemma 3
technical report's Table 1 (arXiv 2503.19786: "Vision Encoder 417M"; 12B: 1,012M embedding and 10,759M
non-embedding parameters).
"""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.main import main
from cosim.engines.estimate import estimate
from cosim.engines.memory import inference_weight_bytes
from cosim.errors import CosimInputError
from cosim.graph.build import dtypes
from cosim.graph.vision import vision_rows
from cosim.specs.hf_import import workload_from_hf_config
from cosim.specs.loader import load_workload
from cosim.specs.scenario import Parallelism, Scenario
from cosim.validate.mapping import energy_queries, load_mapping
from cosim.workloads.params import params_total, vision_params, vision_tower_params

HF = Path(__file__).parent / "data" / "hf"
H, INNER, LAYERS, PATCHES, LM_HIDDEN = 1152, 4304, 27, (896 // 14) ** 2, 3840


def _gemma():
    return load_workload("gemma-3-12b")


def test_siglip_tower_hand_count_matches_the_report():
    # per block: q, k, v, o (h x h + h each), fc1 and fc2 (h x 4304 with biases), two LayerNorms (2h each)
    block = 4 * (H * H + H) + (H * INNER + INNER) + (INNER * H + H) + 2 * 2 * H
    # patch conv (3 x 14 x 14 inputs, bias), 4,096 learned positions, final LayerNorm
    tower = 3 * 14 * 14 * H + H + PATCHES * H + LAYERS * block + 2 * H
    assert vision_tower_params(_gemma().vision) == tower == 416_866_032
    assert tower == pytest.approx(417e6, rel=0.002)
    # the projection: an RMSNorm (1,152) and a 1,152 x 3,840 matrix
    assert vision_params(_gemma()) == tower + H + H * LM_HIDDEN


def test_gemma3_with_vision_matches_the_report_total():
    # Table 1: 417M + 1,012M + 10,759M; cosim's text model has 48 x 2 x 3,840 fewer norm weights (its notes)
    assert params_total(_gemma()) + vision_params(_gemma()) == pytest.approx(12_188e6, rel=0.002)


def test_one_image_flops_by_hand():
    rows = vision_rows(_gemma().vision, LM_HIDDEN, dtypes(Scenario(phase="prefill")), 1, 1)
    flops = sum(r["flops"] * r.get("repeat", 1.0) for r in rows if r["name"] != "vision.mlp.act")
    gemms = 2 * PATCHES * (4 * H * H + 2 * H * INNER) * LAYERS
    attention = 2 * 2 * PATCHES * PATCHES * H * LAYERS  # QK^T and PV over all 4,096 x 4,096 patch pairs
    patch, projection = 2 * PATCHES * 3 * 14 * 14 * H, 2 * 256 * H * LM_HIDDEN
    # biases, norms and the pooling add under 0.1%
    assert flops == pytest.approx(gemms + attention + patch + projection, rel=1e-3)


def test_tensor_parallel_splits_the_tower():
    dt = dtypes(Scenario(phase="prefill"))
    one = {r["name"]: r for r in vision_rows(_gemma().vision, LM_HIDDEN, dt, 1, 2)}
    two = {r["name"]: r for r in vision_rows(_gemma().vision, LM_HIDDEN, dt, 2, 2)}
    assert two["vision.qkv_proj"]["flops"] == pytest.approx(one["vision.qkv_proj"]["flops"] / 2)
    assert "vision.attn_allreduce" in two and "vision.attn_allreduce" not in one
    assert two["vision.projection"]["flops"] == one["vision.projection"]["flops"]  # whole on every chip


def _run(phase="prefill", images=1, input_len=300, batch=1, **kw):
    return estimate("h100-sxm", "gemma-3-12b", Scenario(phase=phase, batch=batch, input_len=input_len,
                                                        images_per_request=images, **kw))


def test_an_image_costs_its_encoder_in_prefill_only():
    with_image, text_only = _run(images=1), _run(images=0)
    encoder = with_image.breakdown[with_image.breakdown.stage == "vision_encoder"].time_s.sum()
    assert encoder > 0 and text_only.breakdown[text_only.breakdown.stage == "vision_encoder"].empty
    assert with_image.latency_s == pytest.approx(text_only.latency_s + encoder, rel=0.02)
    # a decode step attends to the image tokens already cached: the images do not run again
    assert _run("decode", images=1).latency_s == _run("decode", images=0).latency_s


@settings(max_examples=8, deadline=None)
@given(images=st.integers(0, 3), chunked=st.booleans())
def test_more_images_never_make_generation_cheaper(images, chunked):
    def energy(n):
        return _run("generate", images=n, input_len=100 + 256 * 4, batch=32, output_len=200,
                    chunked_prefill=chunked).energy_j_per_token

    assert energy(images + 1) > energy(images)


def test_weights_hold_the_tower_in_bf16_split_over_tp():
    text = load_workload("gemma-3-12b").model_copy(update={"vision": None})
    for tp in (1, 2):
        sc = Scenario(phase="decode", parallelism=Parallelism(tp=tp), weight_precision="fp8",
                      activation_precision="fp8", kv_precision="fp8")
        extra = inference_weight_bytes(_gemma(), sc) - inference_weight_bytes(text, sc)
        assert extra == pytest.approx(vision_params(_gemma()) * 2 / tp)


@pytest.mark.parametrize(("workload", "scenario", "field"), [
    ("llama-3.1-8b", dict(phase="prefill", input_len=300, images_per_request=1), "images_per_request"),
    ("gemma-3-12b", dict(phase="prefill", input_len=200, images_per_request=1), "input_len"),
    ("gemma-3-12b", dict(phase="train", input_len=300, images_per_request=1), "images_per_request"),
])
def test_questions_images_cannot_answer_are_clear_errors(workload, scenario, field):
    with pytest.raises(CosimInputError) as err:
        estimate("h100-sxm", workload, Scenario(batch=1, **scenario))
    assert err.value.field == field


def test_cli_adds_the_image_tokens_and_rejects_text_models(capsys):
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "gemma-3-12b", "--phase", "prefill",
                 "--input-len", "44", "--images-per-request", "1", "--format", "json"]) == 0
    with_image = json.loads(capsys.readouterr().out)
    direct = _run(images=1, input_len=44 + 256)
    assert with_image["latency_s"] == pytest.approx(direct.latency_s)
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--images-per-request", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "image encoder" in err


def test_hf_import_reads_gemma3_vision_only():
    gemma = workload_from_hf_config(json.loads((HF / "gemma-3-12b-it.json").read_text()))
    assert gemma.vision == _gemma().vision
    scout = workload_from_hf_config(json.loads((HF / "llama-4-scout-17b-16e-instruct.json").read_text()))
    assert scout.vision is None  # tiled images: not this schema


def test_image_chat_rows_map_where_the_encoder_is_modelled():
    queries, unmapped = energy_queries(load_mapping())
    gemma = {k: q for k, q in queries.items() if "gemma-3-12b-it-image-chat" in k}
    assert len(gemma) == 4
    for q in gemma.values():
        # one image a prompt; the text as long as the answer (the rows' rule for chat) plus its 256 tokens
        assert q.images_per_request == 1 and q.input_len == q.output_len + 256
    scout = [r for k, r in unmapped.items() if "llama-4-scout" in k and "image-chat" in k]
    assert scout and all("no image encoder" in r for r in scout)


def test_serving_says_it_does_not_simulate_images():
    from cosim.serving.service import make_requests, serve

    req = make_requests(offline=True, num_requests=4, qps=None, duration_s=None, input_len="600", output_len="10")
    with pytest.raises(CosimInputError) as err:
        serve("h100-sxm", "gemma-3-12b", Scenario(phase="generate", images_per_request=1), chips=1, requests=req)
    assert err.value.field == "images_per_request"
