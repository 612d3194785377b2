"""Hugging Face configs of the LayerNorm-era decoders (GPT-2, GPT-J, GPT-NeoX/Pythia, OPT, Phi-1/2, Falcon,
StarCoder2) in the keys `hf_import` reads for every model.

Each reader returns the config with the generic keys filled in (hidden_size, num_hidden_layers,
num_attention_heads, num_key_value_heads, intermediate_size, attention_bias, mlp_bias, tie_word_embeddings,
max_position_embeddings) and the spec fields its layer differs in: LayerNorm, a plain (ungated) MLP, a parallel
attention + MLP block and its norms, learned positions, a biased output head. The shapes and defaults are
transformers' (the model's Config class and the modules that read it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cosim.errors import CosimInputError

Reader = Callable[[dict[str, Any], str | None], tuple[dict[str, Any], dict[str, Any]]]


def config_int(data: dict[str, Any], key: str, file: str | None, default: int | None = None) -> int:
    """A positive integer field of a config (`default` where absent), else a CosimInputError naming it."""
    value = data.get(key, default)
    if value is None:
        raise CosimInputError("required field is missing", file=file, field=key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CosimInputError(f"must be a positive integer, got {value!r}", file=file, field=key)
    return value


def _renamed(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The config with each `old` key also under its generic `new` name (an explicit `new` key wins)."""
    return {**{new: data[old] for old, new in names.items() if old in data}, **data}


def _block(mlp_kind: str, *, parallel: bool = False, norms: int = 1, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"norm": "layernorm", "mlp": {"kind": mlp_kind}, **extra}
    if parallel:
        fields["parallel_attention_mlp"] = True
        if norms == 2:
            fields["parallel_block_norms"] = 2
    return fields


def gpt2(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """GPT-2: biases everywhere, a learned table of n_positions, the head tied to the embedding (GPT2Config)."""
    data = _renamed(data, {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
                           "n_positions": "max_position_embeddings"})
    h = config_int(data, "hidden_size", file)
    data = {"tie_word_embeddings": True, "max_position_embeddings": 1024, **data,
            "intermediate_size": data.get("n_inner") or 4 * h, "attention_bias": True, "mlp_bias": True}
    return data, _block("gelu", learned_position_embeddings=True)


def gptj(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """GPT-J: attention and MLP in parallel off one LayerNorm (ln_1), no attention biases, a biased MLP and an
    untied, biased head (GPTJConfig, GPTJForCausalLM)."""
    data = _renamed(data, {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
                           "n_positions": "max_position_embeddings"})
    h = config_int(data, "hidden_size", file)
    data = {"tie_word_embeddings": False, **data,
            "intermediate_size": data.get("n_inner") or 4 * h, "attention_bias": False, "mlp_bias": True}
    return data, _block("gelu", parallel=True, lm_head_bias=True)


def gpt_neox(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """GPT-NeoX and Pythia: biased attention and MLP, an untied head (embed_out); with use_parallel_residual
    (the default) attention and MLP run in parallel off their own LayerNorms (GPTNeoXConfig)."""
    data = {"tie_word_embeddings": False, **data}
    data = {**data, "attention_bias": bool(data.get("attention_bias", True)), "mlp_bias": True}
    return data, _block("gelu", parallel=bool(data.get("use_parallel_residual", True)), norms=2)


def opt(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """OPT: biases (enable_bias), a ReLU MLP ffn_dim wide, a learned position table two rows longer than
    max_position_embeddings (OPTLearnedPositionalEmbedding's offset), the head tied to the embedding."""
    h = config_int(data, "hidden_size", file)
    proj = data.get("word_embed_proj_dim")
    if proj not in (None, h):
        raise CosimInputError(f"word_embed_proj_dim ({proj}) differs from hidden_size ({h}): OPT-350m's "
                              "projections around the embedding are not modelled", file=file,
                              field="word_embed_proj_dim")
    act = data.get("activation_function", "relu")
    if act != "relu":
        raise CosimInputError(f"activation_function {act!r}: only OPT's ReLU MLP is modelled", file=file,
                              field="activation_function")
    bias = bool(data.get("enable_bias", True))
    data = {"tie_word_embeddings": True, **data, "intermediate_size": config_int(data, "ffn_dim", file),
            "attention_bias": bias, "mlp_bias": bias,
            "max_position_embeddings": config_int(data, "max_position_embeddings", file, default=2048) + 2}
    return data, _block("relu", learned_position_embeddings=True)


def phi(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Phi-1, Phi-1.5, Phi-2: attention and MLP in parallel off one LayerNorm, biases everywhere, an untied,
    biased head (PhiConfig, PhiForCausalLM)."""
    heads = config_int(data, "num_attention_heads", file)
    data = {"tie_word_embeddings": False, **data, "attention_bias": True, "mlp_bias": True,
            "num_key_value_heads": data.get("num_key_value_heads") or heads}  # null in Phi-2's config: MHA
    return data, _block("gelu", parallel=True, lm_head_bias=True)


def starcoder2(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """StarCoder2: LayerNorms, a plain GELU MLP (c_fc, c_proj), biases where use_bias (the default), GQA, a
    sliding window on every layer (Starcoder2Config)."""
    bias = bool(data.get("use_bias", True))
    data = {"tie_word_embeddings": True, **data, "attention_bias": bias, "mlp_bias": bias}
    return data, _block("gelu")


#: Falcon's original (RWConfig, trust_remote_code) spellings of the keys transformers' FalconConfig renamed
_FALCON_ALIASES = {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_head_kv": "num_kv_heads"}


def falcon(data: dict[str, Any], file: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Falcon: KV heads `num_kv_heads` under the new decoder architecture (40B, 180B), one with `multi_query`
    (7B), else one per head; the MLP 4 x hidden wide (`ffn_hidden_size`), `bias` on every projection; the new
    architecture runs attention and MLP in parallel off two LayerNorms (one where `num_ln_in_parallel_attn` is 1,
    Falcon 2 11B), the older one off one LayerNorm where `parallel_attn` (7B), else in sequence (the RW
    models); the head tied to the embedding unless the config says otherwise."""
    data = {"tie_word_embeddings": True, "max_position_embeddings": 2048, **_renamed(data, _FALCON_ALIASES)}
    heads = config_int(data, "num_attention_heads", file)
    new_arch = bool(data.get("new_decoder_architecture"))
    kv = config_int(data, "num_kv_heads", file, default=heads) if new_arch or not data.get("multi_query", True) else 1
    bias = bool(data.get("bias", False))
    data = {**data, "num_key_value_heads": kv, "attention_bias": bias, "mlp_bias": bias,
            "intermediate_size": data.get("ffn_hidden_size") or 4 * config_int(data, "hidden_size", file)}
    parallel = new_arch or bool(data.get("parallel_attn", True))
    norms = 2 if new_arch and (data.get("num_ln_in_parallel_attn") or 2) == 2 else 1
    return data, _block("gelu", parallel=parallel, norms=norms)


#: model_type -> (the `architectures` class name transformers writes for it, its reader)
READERS: dict[str, tuple[str, Reader]] = {
    "gpt2": ("GPT2LMHeadModel", gpt2),
    "gptj": ("GPTJForCausalLM", gptj),
    "gpt_neox": ("GPTNeoXForCausalLM", gpt_neox),
    "opt": ("OPTForCausalLM", opt),
    "phi": ("PhiForCausalLM", phi),
    "starcoder2": ("Starcoder2ForCausalLM", starcoder2),
    "falcon": ("FalconForCausalLM", falcon),
}
