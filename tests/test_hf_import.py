"""Hugging Face config.json import: fixtures copied from published configs match the catalog."""

import copy
import json
from pathlib import Path

import pytest

from cosim.cli.main import main
from cosim.errors import CosimInputError
from cosim.specs.hf_import import workload_from_hf_config
from cosim.specs.loader import load_workload
from cosim.workloads.params import params_active, params_total

HF = Path(__file__).parent / "data" / "hf"


def _load(name: str) -> dict:
    return json.loads((HF / name).read_text())


@pytest.mark.parametrize(
    ("fixture", "slug"),
    [
        ("llama-3.1-8b.json", "llama-3.1-8b"),
        ("mixtral-8x7b.json", "mixtral-8x7b"),
        ("qwen3-235b-a22b.json", "qwen3-235b-a22b"),
        ("deepseek-v3.json", "deepseek-v3"),
    ],
)
def test_fixture_matches_catalog_params(fixture, slug):
    imported = workload_from_hf_config(_load(fixture), file=str(HF / fixture))
    catalog = load_workload(slug)
    assert params_total(imported) == params_total(catalog)
    assert params_active(imported) == params_active(catalog)
    assert imported.attention == catalog.attention
    assert imported.moe == catalog.moe


@pytest.mark.parametrize(
    ("fixture", "published"),
    [
        ("mistral-7b-v0.1.json", 7.24e9),  # HF safetensors count of mistralai/Mistral-7B-v0.1
        ("qwen2.5-7b.json", 7.61e9),  # Qwen/Qwen2.5-7B model card: "Number of Parameters: 7.61B"
    ],
)
def test_fixture_without_catalog_matches_published(fixture, published):
    model = workload_from_hf_config(_load(fixture), file=fixture)
    assert params_total(model) == pytest.approx(published, rel=0.01)


def test_loader_routes_json_to_importer():
    model = load_workload(HF / "mixtral-8x7b.json")
    assert model.family == "moe" and model.moe.num_experts == 8 and model.moe.experts_per_token == 2


def test_mistral_sliding_window_on_every_layer():
    att = workload_from_hf_config(_load("mistral-7b-v0.1.json")).attention
    assert att.sliding_window == 4096 and att.sliding_window_layers == 32


def test_qwen_sliding_window_only_when_enabled():
    data = _load("qwen2.5-7b.json")
    assert workload_from_hf_config(data).attention.sliding_window_layers == 0  # use_sliding_window false
    data = {**data, "use_sliding_window": True, "max_window_layers": 20, "sliding_window": 4096}
    att = workload_from_hf_config(data).attention
    assert att.sliding_window == 4096 and att.sliding_window_layers == 28 - 20


def test_qwen2_qkv_bias_counts():
    model = workload_from_hf_config(_load("qwen2.5-7b.json"))
    assert model.attention.qkv_bias and not model.attention.out_bias
    # 28 layers x (q bias 3584 + k, v biases 512 each) on top of the bias-free count
    no_bias = model.model_copy(update={"attention": model.attention.model_copy(update={"qkv_bias": False})})
    assert params_total(model) - params_total(no_bias) == 28 * (3584 + 2 * 4 * 128)


def test_qwen3_qk_norm_and_explicit_head_dim():
    att = workload_from_hf_config(_load("qwen3-235b-a22b.json")).attention
    assert att.qk_norm and att.head_dim == 128 and att.num_kv_heads == 4


def test_head_dim_and_kv_heads_defaults():
    data = copy.deepcopy(_load("llama-3.1-8b.json"))
    del data["num_key_value_heads"]
    att = workload_from_hf_config(data).attention
    assert att.head_dim == 4096 // 32 and att.num_kv_heads == 32 and att.kind == "mha"


def test_tied_embeddings_drop_one_matrix():
    data = _load("llama-3.1-8b.json")
    untied = workload_from_hf_config(data)
    tied = workload_from_hf_config({**data, "tie_word_embeddings": True})
    assert params_total(untied) - params_total(tied) == 128256 * 4096


def test_qwen3_moe_dense_layers_from_mlp_only_layers():
    data = {**_load("qwen3-235b-a22b.json"), "mlp_only_layers": [0, 1]}
    model = workload_from_hf_config(data)
    assert model.moe.first_dense_layers == 2


def test_deepseek_mla_fields():
    model = workload_from_hf_config(_load("deepseek-v3.json"))
    att, moe = model.attention, model.moe
    assert (att.kind, att.q_lora_rank, att.kv_lora_rank, att.qk_rope_head_dim) == ("mla", 1536, 512, 64)
    assert (moe.num_experts, moe.num_shared_experts, moe.first_dense_layers) == (256, 1, 3)


def test_deepseek_v2_lite_without_q_lora():
    data = {**_load("deepseek-v3.json"), "model_type": "deepseek_v2", "architectures": ["DeepseekV2ForCausalLM"],
            "q_lora_rank": None, "topk_method": "greedy"}
    model = workload_from_hf_config(data)
    assert not model.attention.q_lora_rank and not model.moe.router_bias


def test_unsupported_architecture_cli_one_line(capsys):
    assert main(["specs", "show", str(HF / "unsupported.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "mamba" in err and "unsupported architecture" in err and "LlamaForCausalLM" in err


def test_unsupported_architecture_in_check_output(capsys):
    main(["specs", "check", str(HF / "unsupported.json")])
    out = capsys.readouterr().out.strip()
    assert out.startswith("FAIL") and "mamba" in out and "\n" not in out


def test_unsupported_architecture_check_exit_code():
    assert main(["specs", "check", str(HF / "unsupported.json")]) == 2


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("hidden_size"), "hidden_size"),
        (lambda d: d.update(num_key_value_heads=5), "num_key_value_heads"),
        (lambda d: d.update(num_experts_per_tok=9), "num_experts_per_tok"),
        (lambda d: d.update(num_hidden_layers=-2), "num_hidden_layers"),
    ],
)
def test_bad_config_names_the_field(tmp_path, capsys, edit, field):
    data = _load("mixtral-8x7b.json")
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert main(["specs", "show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"field '{field}'" in err and "bad.json" in err


def test_non_object_rejected():
    with pytest.raises(CosimInputError):
        workload_from_hf_config([1, 2])  # type: ignore[arg-type]
