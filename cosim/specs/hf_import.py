"""Read a local Hugging Face `config.json` into a `DecoderLM` workload spec.

Users have a model's config.json long before they write a cosim YAML for it; reading it directly
removes a transcription step where head counts and expert widths get mistyped. Supported
architectures: Llama (and IBM Granite), Llama 4, Mistral, Mixtral, Qwen2/Qwen2.5, Qwen1.5/Qwen2-MoE, Qwen3,
Qwen3-MoE, DeepSeek-V2, DeepSeek-V3, GLM-4.5 (Glm4Moe), OLMoE, gpt-oss, Gemma, Gemma 2, Gemma 3, Phi-3/Phi-4,
the hybrid Mamba-2 / attention / MoE Nemotron-H (Nemotron Nano 2, Nemotron 3), and the LayerNorm-era decoders
of `cosim.specs.hf_classic`: GPT-2, GPT-J, GPT-NeoX/Pythia, OPT, Phi-1/1.5/2, StarCoder2 and Falcon (7B, 40B,
180B, Falcon 2 11B, the RW models). A multimodal checkpoint
(Gemma 3, Llama 4, Mistral Small 3.1) is read through its `text_config`: the language model only. Anything
else raises `CosimInputError` naming the architecture and listing the supported ones.

What an import leaves out, since it moves neither the weights nor the time by more than a few parts in ten
thousand: Gemma 2's extra post-norms and logit soft-capping, the multipliers of Granite, the sigmoid gate
on Qwen-MoE's shared expert, OLMoE's full-width q/k norms (counted per head). Multi-token-prediction modules
(GLM-4.5's and DeepSeek-V3's `num_nextn_predict_layers`) become `mtp_modules`, which draft tokens for
speculative decoding (`Scenario.draft_tokens`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cosim.errors import CosimInputError
from cosim.specs.hf_classic import READERS
from cosim.specs.hf_classic import config_int as _int
from cosim.specs.workload import DecoderLM

# model_type -> the `architectures` class name transformers writes for it
SUPPORTED: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "granite": "GraniteForCausalLM",
    "mistral": "MistralForCausalLM",
    "mixtral": "MixtralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen2_moe": "Qwen2MoeForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "deepseek_v2": "DeepseekV2ForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
    "glm4_moe": "Glm4MoeForCausalLM",
    "olmoe": "OlmoeForCausalLM",
    "gpt_oss": "GptOssForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "llama4_text": "Llama4ForCausalLM",
    "nemotron_h": "NemotronHForCausalLM",
    **{mt: cls for mt, (cls, _) in READERS.items()},
}
# multimodal wrappers whose language model sits in `text_config`
_MULTIMODAL: dict[str, str] = {
    "gemma3": "Gemma3ForConditionalGeneration",
    "llama4": "Llama4ForConditionalGeneration",
    "mistral3": "Mistral3ForConditionalGeneration",
}
# config defaults of the text models where the key may be absent (transformers' Gemma3TextConfig,
# Llama4TextConfig)
_TEXT_DEFAULTS: dict[str, dict[str, Any]] = {
    # transformers' GemmaConfig, Gemma2Config (Gemma ties its embeddings whether or not the config says so)
    "gemma": {"tie_word_embeddings": True},
    "gemma2": {"tie_word_embeddings": True, "sliding_window": 4096, "hidden_activation": "gelu_pytorch_tanh"},
    "gemma3_text": {"tie_word_embeddings": True, "sliding_window_pattern": 6, "hidden_activation": "gelu_pytorch_tanh"},
    "llama4_text": {"tie_word_embeddings": False, "interleave_moe_layer_step": 1, "no_rope_layer_interval": 4},
    # transformers' NemotronHConfig
    "nemotron_h": {"tie_word_embeddings": False, "mlp_hidden_act": "relu2", "conv_kernel": 4, "chunk_size": 128,
                   "use_conv_bias": True, "use_bias": False, "n_groups": 8, "ssm_state_size": 128},
}
_BY_CLASS = {cls: mt for mt, cls in SUPPORTED.items()}
_GELU_ACTS = {"gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_python"}


def _language_model(data: dict[str, Any]) -> dict[str, Any]:
    """The language model's fields: a multimodal wrapper's `text_config`, else the config itself."""
    archs = data.get("architectures") or []
    wrapper = data.get("model_type") if data.get("model_type") in _MULTIMODAL else next(
        (mt for mt, cls in _MULTIMODAL.items() if isinstance(archs, list) and cls in archs), None)
    text = data.get("text_config")
    if wrapper is None or not isinstance(text, dict):
        return data
    merged = {**text}
    merged.setdefault("model_type", f"{wrapper}_text")
    for key in ("_name_or_path", "tie_word_embeddings"):
        if key in data and key not in merged:
            merged[key] = data[key]
    vision = data.get("vision_config")
    if wrapper == "gemma3" and isinstance(vision, dict):  # a fixed-resolution SigLIP tower
        merged[_VISION_KEY] = {**vision, "mm_tokens_per_image": data.get("mm_tokens_per_image", 256)}
    return merged


#: where `_language_model` leaves a wrapper's image encoder for `_vision` (not a config.json key)
_VISION_KEY = "_cosim_vision_config"


def _vision(data: dict[str, Any], file: str | None) -> dict[str, Any] | None:
    """Gemma 3's SigLIP tower (vision_config; mm_tokens_per_image, Gemma3Config's default 256) as the spec's
    `vision`; None for other models, whose image encoders (Llama 4's tiles) are not imported."""
    vision = data.get(_VISION_KEY)
    if vision is None:
        return None
    out = {}
    for key, name in (("num_hidden_layers", "num_layers"), ("hidden_size", "hidden_size"),
                      ("intermediate_size", "intermediate_size"), ("num_attention_heads", "num_heads"),
                      ("patch_size", "patch_size"), ("image_size", "image_size"),
                      ("mm_tokens_per_image", "tokens_per_image")):
        value = vision.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            field = key if key == "mm_tokens_per_image" else f"vision_config.{key}"
            raise CosimInputError(f"must be a positive integer, got {value!r}", file=file, field=field)
        out[name] = value
    return out


def _arch(data: dict[str, Any], file: str | None) -> str:
    model_type = data.get("model_type")
    if isinstance(model_type, str) and model_type in SUPPORTED:
        return model_type
    archs = data.get("architectures") or []
    if isinstance(archs, list):
        for cls in archs:
            if cls in _BY_CLASS:
                return _BY_CLASS[cls]
    named = model_type or (archs[0] if isinstance(archs, list) and archs else None)
    supported = ", ".join(f"{mt} ({cls})" for mt, cls in SUPPORTED.items())
    supported += "; multimodal " + ", ".join(f"{mt} ({cls}, its text_config)" for mt, cls in _MULTIMODAL.items())
    what = f"'{named}'" if named else "not stated (no model_type or architectures)"
    raise CosimInputError(
        f"unsupported architecture {what}; supported: {supported}", file=file, field="model_type"
    )


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9.\-]+", "-", text.lower()).strip("-.")
    return slug or "hf-model"


def _mlp_kind(data: dict[str, Any]) -> str:
    if data.get("mlp_hidden_act") == "relu2":  # Nemotron-H's ungated squared-ReLU MLP
        return "relu2"
    act = str(data.get("hidden_act") or data.get("hidden_activation") or "silu")
    return "geglu" if act in _GELU_ACTS else "swiglu"


#: Nemotron-H's block names (transformers' NemotronHConfig.layers_block_type) -> hybrid_pattern letters
_BLOCK_LETTERS = {"mamba": "M", "attention": "*", "full_attention": "*", "mlp": "-", "moe": "E"}


def _block_pattern(data: dict[str, Any]) -> Any:
    """The layer pattern as letters: `hybrid_override_pattern`, or a `layers_block_type` list of block names (the
    spelling of newer configs); the raw value when neither reads as one."""
    pattern = data.get("hybrid_override_pattern")
    names = data.get("layers_block_type")
    if pattern is None and isinstance(names, list) and all(n in _BLOCK_LETTERS for n in names):
        return "".join(_BLOCK_LETTERS[n] for n in names)
    return pattern if pattern is not None else names


def _hybrid(data: dict[str, Any], layers: int, file: str | None) -> dict[str, Any]:
    """Nemotron-H's layer pattern and Mamba-2 mixer as the spec's `hybrid_pattern` and `mamba`."""
    pattern = _block_pattern(data)
    field = "hybrid_override_pattern" if "hybrid_override_pattern" in data else "layers_block_type"
    if not isinstance(pattern, str) or len(pattern) != layers:
        raise CosimInputError(f"expected num_hidden_layers ({layers}) blocks (letters M * - E, or the names "
                              f"{sorted(_BLOCK_LETTERS)}), got {pattern!r}", file=file, field=field)
    other = sorted(set(pattern) - set("ME*-"))
    if other:
        raise CosimInputError(f"block letters {other} are not supported (M Mamba-2, * attention, - MLP, E MoE)",
                              file=file, field=field)
    mamba = {"num_heads": _int(data, "mamba_num_heads", file), "head_dim": _int(data, "mamba_head_dim", file),
             "num_groups": _int(data, "n_groups", file), "state_size": _int(data, "ssm_state_size", file),
             "conv_kernel": _int(data, "conv_kernel", file), "chunk_size": _int(data, "chunk_size", file),
             "conv_bias": bool(data.get("use_conv_bias")),
             "proj_bias": bool(data.get("use_bias") or data.get("mamba_proj_bias"))}
    return {"hybrid_pattern": pattern, "mamba": mamba if "M" in pattern else None}


def _sliding(data: dict[str, Any], arch: str, layers: int) -> tuple[int | None, int]:
    """(window, layers that use it). Mistral/Mixtral window every layer; Qwen only with use_sliding_window,
    on layers at or above max_window_layers; gpt-oss the layers `layer_types` marks sliding_attention."""
    window = data.get("sliding_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return None, 0
    # Phi-3's window (2047 on the 4K-context mini) and StarCoder2's (4096) are on every layer
    if arch in ("mistral", "mixtral", "phi3", "starcoder2"):
        return window, layers
    if arch == "gpt_oss":
        types = data.get("layer_types")
        # the config's own default alternates sliding and full attention, starting with a sliding layer
        n = sum(1 for t in types if t == "sliding_attention") if isinstance(types, list) else (layers + 1) // 2
        return (window, n) if n else (None, 0)
    if arch == "gemma2":
        types = data.get("layer_types")
        # Gemma2Config's own default alternates sliding and full attention, starting with a sliding layer
        n = sum(1 for t in types if t == "sliding_attention") if isinstance(types, list) else (layers + 1) // 2
        return (window, n) if n else (None, 0)
    if arch == "gemma3_text":
        types = data.get("layer_types")
        if isinstance(types, list):
            n = sum(1 for t in types if t == "sliding_attention")
        else:  # every `sliding_window_pattern`-th layer is global, the rest windowed
            n = layers - layers // int(data.get("sliding_window_pattern") or 6)
        return (window, n) if n else (None, 0)
    if arch.startswith("qwen"):
        if not data.get("use_sliding_window", False):
            return None, 0
        first = data.get("max_window_layers", layers)
        n = max(0, layers - int(first)) if isinstance(first, int) else 0
        return (window, n) if n else (None, 0)
    return None, 0


def _llama4_chunked(data: dict[str, Any], layers: int) -> tuple[int | None, int]:
    """Llama 4's chunked attention on its RoPE layers: (chunk length, layers); the spec marks the window chunked."""
    chunk = data.get("attention_chunk_size")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk <= 0:
        return None, 0
    flags = data.get("no_rope_layers")
    if isinstance(flags, list) and flags:
        n = sum(1 for f in flags if f)  # 1 = the layer uses RoPE (and the chunk)
    else:
        n = layers - layers // int(data.get("no_rope_layer_interval") or 4)
    return (chunk, n) if n else (None, 0)


def _moe(data: dict[str, Any], arch: str, layers: int, file: str | None) -> dict[str, Any] | None:
    if arch == "nemotron_h":  # the pattern's E blocks (Nemotron 3): sigmoid routing with a score-correction bias
        if "E" not in str(_block_pattern(data) or ""):
            return None
        shared = int(data.get("n_shared_experts") or 0)
        return {
            "num_experts": _int(data, "n_routed_experts", file),
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": _int(data, "moe_intermediate_size", file),
            "num_shared_experts": shared,
            "shared_expert_intermediate_size": _int(data, "moe_shared_expert_intermediate_size", file) if shared else None,
            "router_bias": True,
        }
    if arch == "llama4_text":
        experts = data.get("num_local_experts") or 0
        if not experts:
            return None
        step = int(data.get("interleave_moe_layer_step") or 1)
        listed = data.get("moe_layers")
        # layer i is MoE when listed, else when (i + 1) % step == 0; dense layers kept as a leading block
        moe_layers = len(listed) if isinstance(listed, list) else sum(1 for i in range(layers) if (i + 1) % step == 0)
        width = _int(data, "intermediate_size", file)
        return {
            "num_experts": experts,
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": width,
            "num_shared_experts": 1,
            "shared_expert_intermediate_size": width,
            "first_dense_layers": layers - moe_layers,
        }
    if arch == "gpt_oss":
        return {
            "num_experts": _int(data, "num_local_experts", file),
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": _int(data, "intermediate_size", file),
            "router_bias": True,
        }
    if arch == "mixtral":
        return {
            "num_experts": _int(data, "num_local_experts", file),
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": _int(data, "intermediate_size", file),
        }
    if arch == "olmoe":  # every layer sparse; intermediate_size is an expert's width
        return {
            "num_experts": _int(data, "num_experts", file),
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": _int(data, "intermediate_size", file),
        }
    if arch in ("qwen2_moe", "qwen3_moe"):
        step = data.get("decoder_sparse_step", 1) or 1
        mlp_only = set(data.get("mlp_only_layers") or [])
        # layer i is sparse when it is not listed in mlp_only_layers and (i + 1) % step == 0; the schema
        # keeps dense layers as a leading block, which leaves the parameter count unchanged
        dense = sum(1 for i in range(layers) if i in mlp_only or (i + 1) % step)
        # Qwen1.5/Qwen2-MoE: one shared expert of shared_expert_intermediate_size beside the routed ones
        shared = data.get("shared_expert_intermediate_size") if arch == "qwen2_moe" else None
        shared = _int(data, "shared_expert_intermediate_size", file) if shared is not None else None
        return {
            "num_experts": _int(data, "num_experts", file),
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": _int(data, "moe_intermediate_size", file),
            "num_shared_experts": 1 if shared else 0,
            "shared_expert_intermediate_size": shared,
            "first_dense_layers": dense,
        }
    if arch in ("deepseek_v2", "deepseek_v3", "glm4_moe"):
        if not data.get("n_routed_experts"):
            return None
        width = _int(data, "moe_intermediate_size", file)
        freq = data.get("moe_layer_freq", 1) or 1
        first = int(data.get("first_k_dense_replace", 0) or 0)
        dense = sum(1 for i in range(layers) if i < first or i % freq)
        shared = int(data.get("n_shared_experts") or 0)
        return {
            "num_experts": _int(data, "n_routed_experts", file),
            "experts_per_token": _int(data, "num_experts_per_tok", file),
            "expert_intermediate_size": width,
            "num_shared_experts": shared,
            "shared_expert_intermediate_size": width if shared else None,
            "first_dense_layers": dense,
            # V3's (and GLM-4.5's) noaux_tc routing adds a per-expert score-correction bias
            "router_bias": data.get("topk_method") == "noaux_tc" or arch in ("deepseek_v3", "glm4_moe"),
        }
    return None


def _attention(data: dict[str, Any], arch: str, hidden: int, layers: int, file: str | None) -> dict[str, Any]:
    heads = _int(data, "num_attention_heads", file)
    if arch in ("deepseek_v2", "deepseek_v3"):
        rope = _int(data, "qk_rope_head_dim", file)
        nope = _int(data, "qk_nope_head_dim", file)
        q_rank = data.get("q_lora_rank") or 0
        return {
            "kind": "mla", "num_heads": heads, "num_kv_heads": heads, "head_dim": rope + nope,
            "q_lora_rank": q_rank, "kv_lora_rank": _int(data, "kv_lora_rank", file),
            "qk_rope_head_dim": rope, "qk_nope_head_dim": nope, "v_head_dim": _int(data, "v_head_dim", file),
        }
    kv = _int(data, "num_key_value_heads", file, default=heads)
    head_dim = data.get("head_dim") or None
    if head_dim is None:
        if hidden % heads:
            raise CosimInputError(
                f"hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads}) and head_dim is absent",
                file=file, field="head_dim",
            )
        head_dim = hidden // heads
    head_dim = _int({"head_dim": head_dim}, "head_dim", file)
    if heads % kv:
        raise CosimInputError(
            f"num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kv})",
            file=file, field="num_key_value_heads",
        )
    bias = bool(data.get("attention_bias", False))
    qwen2 = arch in ("qwen2", "qwen2_moe")
    window, window_layers = _llama4_chunked(data, layers) if arch == "llama4_text" else _sliding(data, arch, layers)
    return {
        "kind": "mha" if kv == heads else ("mqa" if kv == 1 else "gqa"),
        "num_heads": heads, "num_kv_heads": kv, "head_dim": head_dim,
        # Qwen2 always has q/k/v biases; GLM-4.5's attention_bias puts them on q, k and v; Llama's (and
        # gpt-oss's) on q, k, v and o
        "qkv_bias": qwen2 or bias,
        "out_bias": bias and not qwen2 and arch != "glm4_moe",
        # Llama 4's qk norm is a weightless L2 norm, so it adds no parameters
        "qk_norm": arch in ("qwen3", "qwen3_moe", "gemma3_text", "olmoe")
        or (arch == "glm4_moe" and bool(data.get("use_qk_norm"))),
        "sliding_window": window, "sliding_window_layers": window_layers,
        "window_kind": "chunked" if arch == "llama4_text" and window else "sliding",
    }


def workload_from_hf_config(data: dict, file: str | None = None, name: str | None = None) -> DecoderLM:
    """A `DecoderLM` from a parsed Hugging Face config.json (see `SUPPORTED`)."""
    from cosim.specs.loader import workload_from_dict

    if not isinstance(data, dict):
        raise CosimInputError("expected a JSON object at the top level", file=file)
    data = _language_model(data)
    arch = _arch(data, file)
    data = {**_TEXT_DEFAULTS.get(arch, {}), **data}
    layer_fields: dict[str, Any] = {}
    if arch in READERS:  # the LayerNorm-era decoders (cosim.specs.hf_classic)
        data, layer_fields = READERS[arch][1](data, file)
    hidden = _int(data, "hidden_size", file)
    layers = _int(data, "num_hidden_layers", file)
    vocab = _int(data, "vocab_size", file)
    attention = _attention(data, arch, hidden, layers, file)
    moe = _moe(data, arch, layers, file)
    if moe and moe["experts_per_token"] > moe["num_experts"]:
        raise CosimInputError(
            f"num_experts_per_tok ({moe['experts_per_token']}) exceeds the expert count ({moe['num_experts']})",
            file=file, field="num_experts_per_tok",
        )
    if arch in ("qwen2_moe", "qwen3_moe") and "intermediate_size" not in data:
        intermediate = moe["expert_intermediate_size"] if moe else _int(data, "intermediate_size", file)
    elif arch == "llama4_text":  # intermediate_size is the experts' width, intermediate_size_mlp the dense one
        intermediate = _int(data, "intermediate_size_mlp", file)
    else:
        intermediate = _int(data, "intermediate_size", file)
    stem = Path(file).stem if file else None
    slug = _slug(name or str(data.get("_name_or_path") or "").split("/")[-1] or stem or arch)
    spec: dict[str, Any] = {
        "schema_version": 1,
        "family": "moe" if moe else "dense",
        "name": slug,
        "display_name": name or str(data.get("_name_or_path") or stem or SUPPORTED[arch]),
        "source": {"title": f"Hugging Face config.json ({SUPPORTED[arch]})", "note": file},
        "hidden_size": hidden,
        "num_layers": layers,
        "vocab_size": vocab,
        "attention": attention,
        "mlp": {"kind": _mlp_kind(data), "intermediate_size": intermediate, "bias": bool(data.get("mlp_bias"))},
        "tie_word_embeddings": bool(data.get("tie_word_embeddings", False)),
        "norm": "rmsnorm",
        "max_position_embeddings": data.get("max_position_embeddings") or None,
    }
    if moe:
        spec["moe"] = moe
    vision = _vision(data, file)
    if vision:
        spec["vision"] = vision
    mtp = data.get("num_nextn_predict_layers")
    if mtp:
        spec["mtp_modules"] = _int(data, "num_nextn_predict_layers", file)
    if arch == "nemotron_h":
        spec.update(_hybrid(data, layers, file))
    if layer_fields:
        spec.update({**layer_fields, "mlp": {**spec["mlp"], **layer_fields.get("mlp", {})}})
    return workload_from_dict(spec, file)
