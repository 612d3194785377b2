"""Widgets the pages share: spec pickers with upload, the scenario form, CSV downloads, error display.

Widgets read their starting values from the canonical state (`cosim.app.session`) and write
submitted values back, so the scenario survives page switches and lives in the URL.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from cosim.app import session
from cosim.app.compute import NotAvailable
from cosim.app.specio import SpecText, parse_hardware, parse_workload
from cosim.app.state import ACTIVATIONS, ATTENTIONS, CAPS, FP4_FORMATS, PHASES, PRECISIONS, RECOMPUTE, STACKS
from cosim.errors import CosimInputError

UPLOAD_TYPES = ["yaml", "yml", "json"]


def index_of(options: list[str], value: Any) -> int:
    """Position of `value` in a selectbox's options, or 0 when the state holds something not offered."""
    return options.index(value) if value in options else 0


def spec_picker(kind: str, *, key: str, options: list[str], state_key: str | None, label: str,
                allow_upload: bool = True) -> str | SpecText | None:
    """A catalog selectbox, or an uploaded YAML / config.json validated on the spot.

    Returns a slug, a `SpecText`, or None when the upload is missing or invalid (the error is shown
    right under the uploader: one line naming the file and field).
    """
    state = session.get()
    source = "Catalog"
    if allow_upload:
        source = st.radio(f"{label} from", ["Catalog", "Upload"], horizontal=True, key=f"{key}_src",
                          label_visibility="collapsed")
    if source == "Catalog":
        current = state.get(state_key) if state_key else None
        slug = st.selectbox(label, options, index=index_of(options, current), key=f"{key}_slug")
        if state_key and slug != state.get(state_key):
            session.update(**{state_key: slug})
        return slug
    help_text = ("hardware spec YAML (see hardware_specs/)" if kind == "hardware"
                 else "workload YAML (see workloads/) or a Hugging Face config.json")
    up = st.file_uploader(f"{label} file", type=UPLOAD_TYPES, key=f"{key}_file", help=help_text)
    if up is None:
        st.caption("Upload a file to use it; uploaded specs are not part of shared links.")
        return None
    try:
        text = up.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.error(f"{up.name}: not a UTF-8 text file")
        return None
    ref = SpecText(up.name, text)
    try:
        spec = parse_hardware(ref) if kind == "hardware" else parse_workload(ref)
    except CosimInputError as err:
        st.error(str(err))
        return None
    st.success(f"{up.name}: valid {kind} spec '{spec.name}'")
    return ref


def scenario_form(key: str, *, phases: tuple[str, ...] = PHASES, show_mapping: bool = True,
                  submit_label: str = "Estimate", show_stack: bool = False) -> bool:
    """The scenario inputs in a form; on submit, writes them to the canonical state. Returns submitted.
    `show_stack`: also the software whose fitted factor the page's estimate uses (the Estimate page)."""
    state = session.get()
    with st.form(key=f"{key}_form", border=True):
        c1, c2, c3, c4 = st.columns(4)
        phase = c1.selectbox("Phase", phases, index=index_of(phases, state["phase"]),
                             key=f"{key}_phase")
        batch = c2.number_input("Batch", min_value=1, max_value=CAPS["batch"], value=int(state["batch"]), step=1,
                                key=f"{key}_batch", help=f"at most {CAPS['batch']:,}")
        input_len = c3.number_input("Input tokens", min_value=1, max_value=CAPS["input_len"],
                                    value=int(state["input_len"]), step=128, key=f"{key}_input_len",
                                    help="prompt tokens (decode: context length)")
        output_len = c4.number_input("Output tokens", min_value=1, max_value=CAPS["output_len"],
                                     value=int(state["output_len"]), step=32, key=f"{key}_output_len")
        values: dict[str, Any] = {"phase": phase, "batch": int(batch), "input_len": int(input_len),
                                  "output_len": int(output_len)}
        if show_mapping:
            c5, c5a, c5b, c5c, c6, c7, c8, c9, c10 = st.columns(9)
            values["precision"] = c5.selectbox("Precision", PRECISIONS, key=f"{key}_precision",
                                               index=PRECISIONS.index(state["precision"]),
                                               help="weights (and activations, unless set apart)")
            values["act"] = c5a.selectbox("Activations", ACTIVATIONS, key=f"{key}_act",
                                          index=ACTIVATIONS.index(state["act"]),
                                          help="what the GEMMs multiply in; wider than the weights is weight-only "
                                               "quantisation (int4 + bf16 = AWQ/GPTQ W4A16), whose weights are "
                                               "widened in the kernel: slower where compute-bound")
            values["attn"] = c5b.selectbox("Attention", ATTENTIONS, key=f"{key}_attn",
                                           index=ATTENTIONS.index(state["attn"]),
                                           help="what the attention cores multiply in; auto: as the GEMMs where "
                                                "a kernel exists (FP8 only over an FP8 KV cache); fp16 for a "
                                                "2023-24 TensorRT-LLM engine over an FP8 cache")
            values["fp4"] = c5c.selectbox("FP4 layout", FP4_FORMATS, key=f"{key}_fp4",
                                          index=FP4_FORMATS.index(state["fp4"]),
                                          help="FP4 weights only: nvfp4 (4.5 bits a weight, NVIDIA's FP4 "
                                               "checkpoints) or mxfp4 (4.25 bits, AMD's FP4 and gpt-oss); auto: "
                                               "the chip's own, nvfp4 on NVIDIA, mxfp4 elsewhere")
            for col, name, helptext in ((c6, "tp", "tensor parallel"), (c7, "pp", "pipeline parallel"),
                                        (c8, "ep", "expert parallel"), (c9, "dp", "data parallel")):
                values[name] = int(col.number_input(name.upper(), min_value=1, max_value=CAPS["parallel"],
                                                    value=int(state[name]), step=1, key=f"{key}_{name}",
                                                    help=helptext))
            values["chips"] = int(c10.number_input("Chips (0 = mapping)", min_value=0, max_value=CAPS["chips"],
                                                   value=int(state["chips"]), step=1, key=f"{key}_chips",
                                                   help="total chips; more than the mapping needs = replicas"))
            if "train" in phases:
                t1, t2, t3, t4 = st.columns(4)
                values["zero"] = int(t1.selectbox(
                    "ZeRO (train)", (0, 1, 2, 3), index=int(state["zero"]), key=f"{key}_zero",
                    help="shards over DP: 1 the optimizer state, 2 also the gradients, 3 also the weights (FSDP)"))
                values["mb"] = int(t2.number_input(
                    "Micro-batch (train)", min_value=0, max_value=CAPS["batch"], value=int(state["mb"]), step=1,
                    key=f"{key}_mb", help="sequences per micro-batch; 0: each replica's whole batch at once"))
                values["vpp"] = int(t3.number_input(
                    "Chunks per stage (train)", min_value=1, max_value=CAPS["parallel"], value=int(state["vpp"]),
                    step=1, key=f"{key}_vpp", help="model chunks per pipeline stage: above 1, the interleaved "
                                                   "1F1B schedule (needs PP > 1)"))
                values["recompute"] = t4.selectbox(
                    "Recompute (train)", RECOMPUTE, index=RECOMPUTE.index(state["recompute"]),
                    key=f"{key}_recompute", help="activation recompute: selective (attention core), full, none")
            if set(phases) & {"decode", "generate"}:
                s1, s2, s3 = st.columns((1, 1, 2))
                values["draft"] = int(s1.number_input(
                    "Draft tokens (decode, generate)", min_value=0, max_value=16, value=int(state["draft"]), step=1,
                    key=f"{key}_draft", help="speculative decoding with the model's own multi-token-prediction "
                                             "module (DeepSeek-V3/R1): tokens drafted per step; 0: off"))
                values["accept"] = float(s2.number_input(
                    "Accepted tokens per step", min_value=1.0, max_value=17.0, value=float(state["accept"]),
                    step=0.1, key=f"{key}_accept", help="with drafts: mean tokens a sequence emits per step (the "
                                                        "accepted drafts + 1), at most drafts + 1"))
                values["kvq"] = s3.checkbox(
                    "KV cache read once per query head (no GQA kernel)", value=bool(state["kvq"]), key=f"{key}_kvq",
                    help="decode attention of a grouped-query model without a GQA kernel (TensorRT-LLM before "
                         "XQA was on by default): each query head reads its KV head's cache, num_heads / "
                         "num_kv_heads times a step; off: read once, as current GQA kernels do")
            if show_stack:
                values["stack"] = st.selectbox(
                    "Software stack", STACKS, index=index_of(STACKS, state["stack"]), key=f"{key}_stack",
                    help="whose kernel efficiency, as cosim validate fitted it, the estimate uses: tuned "
                         "(MLPerf-class engines), trtllm-bench / trtllm-pytorch (TensorRT-LLM's PyTorch backend; "
                         "prompt steps without CUDA graphs), vllm (plus its GPU time per running sequence), "
                         "pytorch (training only: eager FSDP/DDP trainers)")
            values["batch_max"] = st.checkbox("Largest batch that fits (ignores Batch)", value=bool(state["batch_max"]),
                                              key=f"{key}_batch_max")
        submitted = st.form_submit_button(submit_label, type="primary")
    if submitted:
        session.update(**values)
    return submitted


def csv_download(frame: pd.DataFrame, filename: str, *, label: str = "Download CSV", key: str) -> None:
    """A download button with exactly the rows and columns of `frame`."""
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=filename, mime="text/csv",
                       key=key, icon=":material/download:")


def show_failure(err: Exception) -> None:
    """One line for the user: CosimInputError as an error, a missing capability as info."""
    if isinstance(err, NotAvailable):
        st.info(f"Not available yet: {err}")
    else:
        st.error(str(err))


def fmt(value: Any, unit: str = "", *, digits: int = 3) -> str:
    """A number with SI prefix for display ('1.23 k tokens/s'); '-' for None/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if v == 0:
        return f"0 {unit}".strip()
    prefixes = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
    for scale, p in prefixes:
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g} {p}{unit}".strip()
    return f"{v:.{digits}g} {unit}".strip()


def money(value: Any) -> str:
    """Dollars with an SI prefix: '$6.1 M'; '-' for None/NaN."""
    text = fmt(value)
    return text if text == "-" else f"${text}"
