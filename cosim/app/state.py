"""The canonical scenario: defaults, size caps, and the round trip to URL query parameters.

Pure functions (no Streamlit): `parse_query` turns query parameters into a validated state dict
(bad or oversized values fall back to the default and are reported), `to_query` writes the values
that differ from the defaults, so a view is shared as a short link. `cosim.app.session` keeps the
state in `st.session_state` and mirrors it to `st.query_params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from cosim.specs.hardware import Fp4Format
from cosim.validate.mapping import Stack

PHASES = ("prefill", "decode", "generate", "train")
PRECISIONS = ("bf16", "fp16", "fp8", "fp4", "int8", "int4", "fp32")
#: what the GEMMs multiply in: "same" as the weights, or wider (weight-only quantisation: INT4 weights with
#: BF16 activations is AWQ/GPTQ's W4A16; FP4 with FP8 is W4A8)
ACTIVATIONS = ("same", "bf16", "fp16", "fp8")
#: what the attention cores multiply in: "auto" (the GEMMs' precision where an attention kernel exists for it, FP8
#: only over an FP8 cache) or the run's own (fp16: a TensorRT-LLM engine built with --gpt_attention_plugin float16)
ATTENTIONS = ("auto", "bf16", "fp16", "fp8", "fp32")
#: FP4 weights' block-scaled layouts (Scenario.fp4_format): auto (the chip's own), NVIDIA's NVFP4, OCP MXFP4
FP4_FORMATS = ("auto", *get_args(Fp4Format))
#: activation recompute in training: Korthikanti et al.'s selective (attention core), full, or none
RECOMPUTE = ("selective", "full", "none")
#: serving (or training) software whose fitted kernel-efficiency factor an estimate uses (`estimate --stack`)
STACKS: tuple[str, ...] = get_args(Stack)


@dataclass(frozen=True)
class FieldSpec:
    """One state field: default, kind ('int', 'float', 'str', 'bool', 'list'), bounds or choices."""

    default: Any
    kind: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] | None = None


#: Upper bounds keep a single request small enough to answer in seconds (said in the UI).
CAPS = {"batch": 65_536, "input_len": 1_048_576, "output_len": 1_048_576, "parallel": 1024, "chips": 100_000,
        "frames": 1024, "pixels": 8192, "steps": 1000, "compare": 8}

FIELDS: dict[str, FieldSpec] = {
    "hw": FieldSpec("h100-sxm", "str"),
    "wl": FieldSpec("llama-3.1-8b", "str"),
    "phase": FieldSpec("decode", "str", choices=PHASES),
    "batch": FieldSpec(1, "int", 1, CAPS["batch"]),
    "batch_max": FieldSpec(False, "bool"),
    "input_len": FieldSpec(1024, "int", 1, CAPS["input_len"]),
    "output_len": FieldSpec(128, "int", 1, CAPS["output_len"]),
    "precision": FieldSpec("bf16", "str", choices=PRECISIONS),
    "act": FieldSpec("same", "str", choices=ACTIVATIONS),
    "attn": FieldSpec("auto", "str", choices=ATTENTIONS),
    "fp4": FieldSpec("auto", "str", choices=FP4_FORMATS),
    "tp": FieldSpec(1, "int", 1, CAPS["parallel"]),
    "pp": FieldSpec(1, "int", 1, CAPS["parallel"]),
    "ep": FieldSpec(1, "int", 1, CAPS["parallel"]),
    "dp": FieldSpec(1, "int", 1, CAPS["parallel"]),
    "sp": FieldSpec(1, "int", 1, CAPS["parallel"]),
    "chips": FieldSpec(0, "int", 0, CAPS["chips"]),  # 0: as many as the mapping needs
    # training only: ZeRO stage, sequences per micro-batch (0: a replica's whole batch), model chunks per
    # pipeline stage (interleaved 1F1B), activation recompute
    "zero": FieldSpec(0, "int", 0, 3),
    "mb": FieldSpec(0, "int", 0, CAPS["batch"]),
    "vpp": FieldSpec(1, "int", 1, CAPS["parallel"]),
    "recompute": FieldSpec("selective", "str", choices=RECOMPUTE),
    # decode and generate: speculative decoding with the model's own MTP module (DeepSeek-V3/R1): tokens drafted
    # per step (0: off) and the mean tokens a sequence emits per step (the acceptance a run reports)
    "draft": FieldSpec(0, "int", 0, 16),
    "accept": FieldSpec(1.0, "float", 1, 17),
    # decode and generate, GQA models: each query head reads its KV head's cache (a kernel without GQA sharing)
    "kvq": FieldSpec(False, "bool"),
    # the software the estimate prices (its fitted factor from cosim validate); the Estimate page's choice
    "stack": FieldSpec("tuned", "str", choices=STACKS),
    "cmp_hw": FieldSpec(("h100-sxm", "h200-sxm", "mi300x"), "list"),
    "cmp_wl": FieldSpec(("llama-3.1-8b", "llama-3.1-70b"), "list"),
    "cmp_by": FieldSpec("chips", "str", choices=("chips", "workloads")),
    "vwl": FieldSpec("cogvideox-5b", "str"),
}

SCENARIO_KEYS = ("phase", "batch", "input_len", "output_len", "precision", "tp", "pp", "ep", "dp", "sp")
#: fields that only a training step reads (`scenario_kwargs` passes them for phase train)
TRAINING_KEYS = ("zero", "mb", "vpp", "recompute")
#: phases a speculative step applies to (`scenario_kwargs` passes the drafts for them when drafts are set)
SPECULATIVE_PHASES = ("decode", "generate")


def defaults() -> dict[str, Any]:
    """A fresh state with every field at its default."""
    return {k: f.default for k, f in FIELDS.items()}


def coerce(name: str, raw: Any) -> Any:
    """The value of field `name` from a query/widget value; ValueError with a readable reason if invalid."""
    f = FIELDS[name]
    if isinstance(raw, list | tuple) and f.kind != "list":
        raw = raw[-1] if raw else ""
    if f.kind == "int":
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"{name} must be an integer, got '{raw}'") from None
        if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
            raise ValueError(f"{name} must be between {f.low} and {f.high:,}, got {value:,}")
        return value
    if f.kind == "float":
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"{name} must be a number, got '{raw}'") from None
        if not (f.low <= value <= f.high):  # NaN fails too
            raise ValueError(f"{name} must be between {f.low} and {f.high}, got {value}")
        return value
    if f.kind == "bool":
        text = str(raw).strip().lower()
        if text not in ("1", "0", "true", "false"):
            raise ValueError(f"{name} must be 0 or 1, got '{raw}'")
        return text in ("1", "true")
    if f.kind == "list":
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        items = tuple(s.strip() for s in items if str(s).strip())
        if len(items) > CAPS["compare"]:
            raise ValueError(f"{name} lists at most {CAPS['compare']} names, got {len(items)}")
        return items
    text = str(raw).strip()
    if not text:
        raise ValueError(f"{name} is empty")
    if f.choices and text not in f.choices:
        raise ValueError(f"{name} must be one of {', '.join(f.choices)}, got '{text}'")
    return text


def parse_query(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """State from query parameters: defaults for absent keys; invalid values dropped with a message."""
    state = defaults()
    problems = []
    for key, raw in params.items():
        if key not in FIELDS:
            continue
        try:
            state[key] = coerce(key, raw)
        except ValueError as err:
            problems.append(str(err))
    return state, problems


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(value)
    return str(value)


def to_query(state: Mapping[str, Any]) -> dict[str, str]:
    """The fields that differ from their defaults, as query-parameter strings (sorted by key)."""
    out = {}
    for key, f in FIELDS.items():
        if key in state and _text(state[key]) != _text(f.default):
            out[key] = _text(state[key])
    return dict(sorted(out.items()))


def scenario_kwargs(state: Mapping[str, Any], *, training: bool = True, **override: Any) -> dict[str, Any]:
    """Keyword arguments for `cosim.cli.common.build_scenario` from the state (plus overrides); with
    `training`, a train phase also gets the training knobs (ZeRO, micro-batch, vpp, recompute)."""
    kw = {k: state[k] for k in SCENARIO_KEYS}
    act = state.get("act", "same")
    kw["activation_precision"] = None if act == "same" else act
    attn = state.get("attn", "auto")
    kw["attention_precision"] = None if attn == "auto" else attn
    fp4 = state.get("fp4", "auto")
    kw["fp4_format"] = None if fp4 == "auto" else fp4  # None: the chip's own (cosim.app.compute.build)
    if kw["phase"] in SPECULATIVE_PHASES and int(state.get("draft", 0)):
        kw.update(draft_tokens=int(state["draft"]), accepted_tokens_per_step=float(state["accept"]))
    if kw["phase"] in SPECULATIVE_PHASES and state.get("kvq"):  # decode attention's read pattern
        kw["kv_read_per_query_head"] = True
    kw.update(override)
    if training and kw["phase"] == "train":
        kw.update(zero=int(state.get("zero", 0)), microbatch=int(state.get("mb", 0)) or None,
                  vpp=int(state.get("vpp", 1)), recompute=state.get("recompute", "selective"))
    return kw


def training_knobs_set(state: Mapping[str, Any]) -> bool:
    """Whether any training knob differs from its default."""
    return any(state.get(k, FIELDS[k].default) != FIELDS[k].default for k in TRAINING_KEYS)
