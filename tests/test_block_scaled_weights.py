"""Block-scaled weights (NVFP4, MXFP4, MXFP6, AWQ INT4) take their scales' bytes beside their 4- or 6-bit values:
what a checkpoint occupies and what a decode step streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.cli.common import build_scenario
from cosim.engines.memory import inference_weight_bytes
from cosim.graph.build import build_graph
from cosim.specs.hardware import BYTES_PER_ELEMENT, stored_bytes_per_element
from cosim.specs.loader import load_hardware, load_workload
from cosim.workloads.params import params_total


@pytest.mark.parametrize(("precision", "fmt", "bits"), [
    ("fp4", "nvfp4", 4 + 8 / 16),  # E2M1 values, one E4M3 scale per 16 (NVIDIA's NVFP4)
    ("fp4", "mxfp4", 4 + 8 / 32),  # E2M1 values, one E8M0 scale per 32 (OCP MX v1.0)
    ("fp6", "nvfp4", 6 + 8 / 32),  # MXFP6: one E8M0 scale per 32, whatever the FP4 layout
    ("int4", "mxfp4", 4 + (16 + 4) / 128),  # AWQ: an FP16 scale and a 4-bit zero point per group of 128
    ("fp8", "nvfp4", 8), ("int8", "mxfp4", 8), ("bf16", "nvfp4", 16), ("fp32", "nvfp4", 32),
])
def test_stored_bits_per_weight_by_hand(precision, fmt, bits):
    assert 8 * stored_bytes_per_element(precision, fmt) == pytest.approx(bits, rel=1e-15)


def _decode(precision: str, fmt: str = "nvfp4", **kw):
    return build_scenario(phase="decode", batch=1, input_len=1024, precision=precision, fp4_format=fmt, **kw)


def test_a_dense_fp4_checkpoint_holds_its_scales_and_16_bit_vocabulary_tables():
    """Llama 3.1 8B in NVFP4 on one chip: every linear weight at 4.5 bits; the embedding and the untied LM head
    stay BF16 (quantisers leave them out)."""
    model = load_workload("llama-3.1-8b")
    tables = 2 * model.vocab_size * model.hidden_size
    rest = params_total(model) - tables
    assert inference_weight_bytes(model, _decode("fp4")) == pytest.approx(rest * 0.5625 + tables * 2, rel=1e-12)
    assert inference_weight_bytes(model, _decode("fp4", "mxfp4")) == pytest.approx(rest * 0.53125 + tables * 2,
                                                                                    rel=1e-12)
    # the format only matters for FP4: an FP8 checkpoint is the same either way
    assert inference_weight_bytes(model, _decode("fp8", "mxfp4")) == inference_weight_bytes(model, _decode("fp8"))


def test_the_graph_streams_the_scales_of_every_quantised_gemm():
    """The op graph's weight bytes of a quantised GEMM scale with the stored width: NVFP4 / MXFP4 = 4.5 / 4.25."""
    model = load_workload("llama-3.1-8b")
    nv, mx = build_graph(model, _decode("fp4")), build_graph(model, _decode("fp4", "mxfp4"))
    i = list(nv.name).index("mlp.down_proj")
    ratio = nv.bytes_weight[i] / mx.bytes_weight[i]
    assert ratio == pytest.approx(4.5 / 4.25, rel=1e-12)
    assert nv.bytes_weight[i] == pytest.approx(model.mlp.intermediate_size * model.hidden_size * 0.5625, rel=1e-12)


def test_batch_one_fp4_decode_is_no_faster_than_streaming_its_stored_bytes():
    """One decode step of Llama 3.1 70B in NVFP4 on a B200 reads every stored byte once: at least the weights
    (4.5 bits each) over the datasheet bandwidth."""
    from cosim.api import estimate

    model = load_workload("llama-3.1-70b")
    tables = 2 * model.vocab_size * model.hidden_size
    stored = (params_total(model) - tables) * 0.5625 + tables * 2
    bandwidth = load_hardware("b200").main_memory.bandwidth_bytes_per_s.value
    res = estimate("b200", "llama-3.1-70b", _decode("fp4", kv_precision="fp8"), chips=1)
    assert res.tpot_s >= stored / bandwidth


@settings(max_examples=15, deadline=None)
@given(batch=st.sampled_from([1, 8, 64, 256]), context=st.sampled_from([256, 2048, 8192]))
def test_fewer_scale_bytes_never_slow_a_decode_step(batch, context):
    """MXFP4 stores fewer bytes than NVFP4 for the same weights, so its decode step is never slower."""
    from cosim.api import estimate

    sc = {"phase": "decode", "batch": batch, "input_len": context, "precision": "fp4", "kv_precision": "fp8"}
    nv = estimate("b200", "llama-3.1-8b", build_scenario(**sc, fp4_format="nvfp4"), chips=1)
    mx = estimate("b200", "llama-3.1-8b", build_scenario(**sc, fp4_format="mxfp4"), chips=1)
    assert mx.latency_s <= nv.latency_s * (1 + 1e-12)
    assert BYTES_PER_ELEMENT["fp4"] == 0.5  # the element width compute and KV arithmetic use is unchanged


@pytest.mark.parametrize(("vendor", "fmt"), [("NVIDIA", "nvfp4"), ("AMD", "mxfp4"), ("Google", "mxfp4")])
def test_a_chip_without_a_stated_layout_takes_its_vendors(vendor, fmt):
    from cosim.specs.hardware import native_fp4_format

    assert native_fp4_format(vendor) == fmt


def _cli_weights_bytes(capsys, hardware, *extra):
    import json

    from cosim.cli.main import main

    args = ["estimate", "--hardware", hardware, "--workload", "llama-3.1-8b", "--phase", "decode", "--batch", "1",
            "--input-len", "128", "--precision", "fp4", "--format", "json", *extra]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)["memory_bytes_per_chip"]


def test_the_cli_defaults_to_the_chips_own_layout(capsys):
    """`--fp4-format` unset: MXFP4 on an AMD MI355X (CDNA 4 takes MX formats), NVFP4 on a B200; the difference
    is 1/32 byte per quantised weight."""
    amd = _cli_weights_bytes(capsys, "mi355x")
    assert amd == pytest.approx(_cli_weights_bytes(capsys, "mi355x", "--fp4-format", "mxfp4"), rel=1e-12)
    nv_on_amd = _cli_weights_bytes(capsys, "mi355x", "--fp4-format", "nvfp4")
    model = load_workload("llama-3.1-8b")
    quantised = params_total(model) - 2 * model.vocab_size * model.hidden_size
    assert nv_on_amd - amd == pytest.approx(quantised / 32, rel=1e-9)
    assert _cli_weights_bytes(capsys, "b200") == pytest.approx(
        _cli_weights_bytes(capsys, "b200", "--fp4-format", "nvfp4"), rel=1e-12)


def test_a_sweep_on_an_amd_base_spec_stores_mxfp4():
    from cosim.explore.engine import SweepContext
    from cosim.explore.spec import sweep_from_dict

    doc = {"hardware": "mi355x", "workloads": ["llama-3.1-8b"],
           "scenarios": [{"phase": "decode", "batch": 8, "input_len": 512, "precision": "fp4"},
                         {"phase": "decode", "batch": 8, "input_len": 512, "precision": "fp4", "fp4_format": "nvfp4"}],
           "parameters": [{"path": "memory.hbm.bandwidth_bytes_per_s", "values": ["8 TB/s"]}],
           "sampling": {"method": "grid"}, "objectives": ["throughput_tokens_per_s:max"]}
    ctx = SweepContext.build(sweep_from_dict(doc))
    assert [s.fp4_format for s in ctx.scenarios] == ["mxfp4", "nvfp4"]


def test_the_explorer_resolves_auto_per_chip():
    """The explorer's "auto" FP4 layout leaves the field unset; each estimate takes its own chip's layout."""
    from cosim.app import compute
    from cosim.app.state import FIELDS, scenario_kwargs

    state = {k: f.default for k, f in FIELDS.items()} | {"precision": "fp4"}
    kw = scenario_kwargs(state)
    assert kw["fp4_format"] is None and FIELDS["fp4"].default == "auto"
    assert compute.build(kw, load_hardware("mi355x")).fp4_format == "mxfp4"
    assert compute.build(kw, load_hardware("b200")).fp4_format == "nvfp4"
    assert compute.build(scenario_kwargs(state | {"fp4": "mxfp4"}), load_hardware("b200")).fp4_format == "mxfp4"
