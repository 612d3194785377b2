"""The explorer's canonical state: query parameters round-trip, invalid/huge values fall back, uploads parse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosim.app import compute
from cosim.app.specio import SpecText, parse_hardware, parse_workload
from cosim.app.state import (
    ACTIVATIONS,
    CAPS,
    FIELDS,
    PHASES,
    PRECISIONS,
    defaults,
    parse_query,
    scenario_kwargs,
    to_query,
)
from cosim.errors import CosimInputError

states = st.fixed_dictionaries({
    "batch": st.integers(1, CAPS["batch"]), "input_len": st.integers(1, CAPS["input_len"]),
    "phase": st.sampled_from(PHASES), "precision": st.sampled_from(PRECISIONS), "tp": st.integers(1, 1024),
    "act": st.sampled_from(ACTIVATIONS),
    "batch_max": st.booleans(), "chips": st.integers(0, CAPS["chips"]),
    "cmp_hw": st.lists(st.sampled_from(["h100-sxm", "b200", "tpu-v5e"]), min_size=1, max_size=3, unique=True)
    .map(tuple),
})


@given(states)
def test_query_round_trip(values):
    state = {**defaults(), **values}
    back, problems = parse_query(to_query(state))
    assert problems == []
    assert back == state


def test_defaults_give_an_empty_query_and_only_changes_are_written():
    assert to_query(defaults()) == {}
    assert to_query({**defaults(), "batch": 8, "batch_max": True}) == {"batch": "8", "batch_max": "1"}


@given(st.text(max_size=12))
def test_any_text_in_a_link_is_either_valid_or_reported(text):
    state, problems = parse_query({"batch": text, "phase": text, "unknown": text})
    assert isinstance(state["batch"], int) and 1 <= state["batch"] <= CAPS["batch"]
    assert state["phase"] in PHASES
    assert len(problems) <= 2


def test_huge_and_negative_values_fall_back_with_a_message():
    state, problems = parse_query({"batch": str(CAPS["batch"] + 1), "tp": "-1", "cmp_hw": ",".join(["a"] * 9)})
    assert state["batch"] == FIELDS["batch"].default and state["tp"] == 1
    assert len(problems) == 3 and "between" in problems[0]


def test_scenario_kwargs_build_a_scenario():
    from cosim.cli.common import build_scenario

    sc = build_scenario(**scenario_kwargs({**defaults(), "batch": 3, "tp": 2}))
    assert sc.batch == 3 and sc.parallelism.tp == 2
    assert sc.activation_precision == sc.weight_precision == "bf16"  # "same": the activations follow the weights
    w4a16 = build_scenario(**scenario_kwargs({**defaults(), "precision": "int4", "act": "bf16"}))
    assert (w4a16.weight_precision, w4a16.activation_precision) == ("int4", "bf16")


def test_upload_parsing_names_file_and_field():
    with pytest.raises(CosimInputError, match="bad.yaml"):
        parse_hardware(SpecText("bad.yaml", "kind: gpu\ncompute: 3\n"))
    with pytest.raises(CosimInputError, match="malformed JSON"):
        parse_workload(SpecText("config.json", "{"))
    with pytest.raises(CosimInputError, match="top level"):
        parse_workload(SpecText("w.yaml", "- 1\n- 2\n"))
    with pytest.raises(CosimInputError, match="larger than"):
        parse_workload(SpecText("w.yaml", "a" * 1_000_001))
    from pathlib import Path

    hw = parse_hardware(SpecText("h.yaml", Path("hardware_specs/h100-sxm.yaml").read_text()))
    assert hw.name == "h100-sxm"


def test_list_parsers_and_caps():
    assert compute.parse_int_list("50, 25,25", "steps") == [25, 50]
    assert compute.parse_resolutions("720x1280, 480x720") == [(480, 720), (720, 1280)]
    for bad in ("", "x", "0"):
        with pytest.raises(CosimInputError):
            compute.parse_int_list(bad, "steps")
    with pytest.raises(CosimInputError, match="at most"):
        compute.video_table(["h100-sxm"] * 4, "cogvideox-5b", resolutions=[(480, 720)] * 2, frames=[49] * 4,
                            steps=[50] * 2, chips=[1, 2])
    with pytest.raises(CosimInputError, match="at most"):
        compute.sweep_spec("h100-sxm", "llama-3.1-8b", {"phase": "decode"},
                           [{"path": "memory.hbm.bandwidth_bytes_per_s", "low": "1 TB/s", "high": "2 TB/s"}],
                           method="random", points=compute.SWEEP_MAX_POINTS + 1, seed=0,
                           objectives=["usd_per_million_tokens", "throughput_tokens_per_s"])


def test_missing_capability_is_reported_not_faked():
    with pytest.raises(compute.NotAvailable, match="not available yet"):
        compute._import("thing", "cosim.does_not_exist", "f")


def test_training_knobs_reach_a_train_scenario_only():
    from cosim.app.state import training_knobs_set
    from cosim.cli.common import build_scenario

    state = {**defaults(), "phase": "train", "batch": 16, "pp": 2, "dp": 2, "zero": 1, "mb": 2, "vpp": 2,
             "recompute": "full"}
    sc = build_scenario(**scenario_kwargs(state))
    par = sc.parallelism
    assert (par.zero, par.vpp, par.microbatch, sc.recompute) == (1, 2, 2, "full")
    assert training_knobs_set(state) and not training_knobs_set(defaults())
    # other phases (and the sweep schema, training=False) never see them: vpp > 1 would be an error there
    decode = scenario_kwargs({**state, "phase": "decode"})
    assert not {"zero", "microbatch", "vpp", "recompute"} & set(decode)
    assert "vpp" not in scenario_kwargs(state, training=False)
    # mb 0 is each replica's whole batch (no micro-batching)
    assert scenario_kwargs({**state, "mb": 0})["microbatch"] is None
    # they round-trip through a link like every other field
    assert parse_query(to_query(state))[0]["vpp"] == 2


def test_the_stack_field_offers_the_calibrated_stacks_and_round_trips():
    from typing import get_args

    from cosim.validate.mapping import Stack

    state = {**defaults(), "stack": "trtllm-bench"}
    assert parse_query(to_query(state))[0] == state
    assert to_query(defaults()).get("stack") is None  # the default, tuned, stays out of the link
    back, problems = parse_query({"stack": "sglang"})
    assert back["stack"] == "tuned" and len(problems) == 1
    assert set(get_args(Stack)) == set(FIELDS["stack"].choices)
    assert "stack" not in scenario_kwargs(state)  # not a scenario field: the page passes it to the estimate


def test_kv_read_per_query_head_reaches_decode_and_generate_and_round_trips():
    from cosim.cli.common import build_scenario

    state = {**defaults(), "wl": "mistral-7b", "kvq": True}
    assert parse_query(to_query(state))[0] == state
    for phase in ("decode", "generate"):
        assert build_scenario(**scenario_kwargs({**state, "phase": phase})).kv_read_per_query_head
    assert "kv_read_per_query_head" not in scenario_kwargs({**state, "phase": "prefill"})
    assert "kv_read_per_query_head" not in scenario_kwargs({**state, "kvq": False})


def test_speculative_fields_reach_decode_and_generate_and_round_trip():
    from cosim.cli.common import build_scenario

    state = {**defaults(), "wl": "deepseek-r1", "precision": "fp4", "tp": 8, "draft": 3, "accept": 2.8}
    assert parse_query(to_query(state))[0] == state
    for phase in ("decode", "generate"):
        sc = build_scenario(**scenario_kwargs({**state, "phase": phase}))
        assert (sc.draft_tokens, sc.accepted_tokens_per_step) == (3, 2.8)
    # other phases, and drafts left at 0, never see them (a prefill with drafts would be an error)
    assert "draft_tokens" not in scenario_kwargs({**state, "phase": "prefill"})
    assert "draft_tokens" not in scenario_kwargs({**state, "draft": 0})
    # a bad link value falls back with a message; an acceptance above drafts + 1 is the scenario's clear error
    back, problems = parse_query({"accept": "nan", "draft": "99"})
    assert (back["accept"], back["draft"]) == (1.0, 0) and len(problems) == 2
    with pytest.raises(CosimInputError, match="accepted_tokens_per_step"):
        build_scenario(**scenario_kwargs({**state, "draft": 1, "accept": 2.5}))


def test_attention_precision_reaches_the_scenario_and_round_trips():
    from cosim.cli.common import build_scenario

    state = {**defaults(), "precision": "fp8", "attn": "fp16"}
    assert parse_query(to_query(state))[0] == state
    assert build_scenario(**scenario_kwargs(state)).attention_precision == "fp16"
    assert build_scenario(**scenario_kwargs({**state, "attn": "auto"})).attention_precision is None
    back, problems = parse_query({"attn": "int8"})
    assert back["attn"] == "auto" and len(problems) == 1
