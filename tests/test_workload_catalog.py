"""The workload catalog: every slug loads, validates from the CLI, and shows its parameter counts."""

import json
from pathlib import Path

import pytest

from cosim.cli.main import main
from cosim.specs.loader import catalog_dir, list_slugs, load_workload
from cosim.specs.workload import DecoderLM, VideoDiT

SLUGS = [
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
    "llama-3.3-70b", "mixtral-8x7b", "mixtral-8x22b", "qwen3-235b-a22b", "deepseek-v3", "deepseek-r1",
    "gpt-j-6b", "wan2.1-t2v-14b", "wan2.1-t2v-1.3b", "hunyuanvideo", "cogvideox-5b", "open-sora-2",
]


def test_catalog_has_every_required_slug():
    assert set(SLUGS) <= set(list_slugs("workloads"))


@pytest.mark.parametrize("slug", SLUGS)
def test_slug_loads_with_source(slug):
    model = load_workload(slug)
    assert model.name == slug
    assert model.source.title and model.source.url
    if isinstance(model, DecoderLM):
        assert model.published_params_total
        assert (model.moe is None) == (model.family == "dense")
        if model.moe:
            assert model.published_params_active
    else:
        assert isinstance(model, VideoDiT)
        assert "erived" in model.vae.decoder_flops_source or "source" in model.vae.decoder_flops_source
        assert model.published_params_total or "published" in (model.notes or "")


def test_specs_check_catalog_is_clean(capsys):
    paths = sorted(str(p) for p in catalog_dir("workloads").glob("*.yaml"))
    assert main(["specs", "check", *paths]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == len(paths)


@pytest.mark.parametrize("slug", ["llama-3.1-8b", "deepseek-v3", "wan2.1-t2v-14b"])
def test_specs_show_json_has_param_counts(slug, capsys):
    assert main(["specs", "show", slug, "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params_total"] > 0 and info["params_active"] > 0
    assert info["params_active"] <= info["params_total"]


def test_specs_show_deepseek_json_values(capsys):
    assert main(["specs", "show", "deepseek-v3", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params_total"] == pytest.approx(671e9, rel=0.01)  # DeepSeek-V3 report: 671B
    assert info["kv_cache_bytes_per_token_bf16"] == 61 * 576 * 2


def _write(tmp_path: Path, slug: str, edit) -> Path:
    text = (catalog_dir("workloads") / f"{slug}.yaml").read_text()
    path = tmp_path / f"bad-{slug}.yaml"
    path.write_text(edit(text))
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_heads_not_multiple_of_kv_heads_exits_2(tmp_path, capsys):
    path = _write(tmp_path, "llama-3.1-8b", lambda t: t.replace("num_heads: 32,", "num_heads: 30,"))
    assert main(["specs", "show", str(path)]) == 2
    err = _one_line_error(capsys)
    assert "field 'attention.num_kv_heads'" in err and "num_heads (30)" in err


def test_experts_per_token_exceeding_experts_exits_2(tmp_path, capsys):
    path = _write(tmp_path, "mixtral-8x7b", lambda t: t.replace("experts_per_token: 2", "experts_per_token: 9"))
    assert main(["specs", "show", str(path)]) == 2
    err = _one_line_error(capsys)
    assert "experts_per_token'" in err and "exceeds num_experts (8)" in err


def test_misspelt_key_in_video_spec_exits_2(tmp_path, capsys):
    path = _write(tmp_path, "wan2.1-t2v-1.3b", lambda t: t.replace("cross_attn_norm:", "cross_atn_norm:"))
    assert main(["specs", "show", str(path)]) == 2
    err = _one_line_error(capsys)
    assert "cross_atn_norm" in err and "unknown key" in err


def test_lora_modulation_needs_rank(tmp_path, capsys):
    path = _write(tmp_path, "wan2.1-t2v-1.3b", lambda t: t.replace("modulation: shared", "modulation: lora"))
    assert main(["specs", "show", str(path)]) == 2
    assert "modulation_rank" in _one_line_error(capsys)
