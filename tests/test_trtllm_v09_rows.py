"""TensorRT-LLM v0.9.0's static-batch and first-token-latency tables (2024; docs/source/performance.md at the
v0.9.0 tag), added in session 35 as out-of-sample rows: H200, H100, L40S and A100; GPT-J 6B, Mistral 7B,
Mixtral 8x7B, Llama 2 7B and 70B; Falcon 180B's cells, listed as unmapped until then, since session 38
(tests/test_catalog_falcon.py).

Values asserted are the published cells, closed forms from the model's shapes, or bounds a probe must meet;
never cosim's own output fed back.
"""

from __future__ import annotations

import pytest

from cosim.engines.calibration import calibrated_params
from cosim.specs.loader import load_hardware, load_workload
from cosim.validate.mapping import load_mapping
from cosim.validate.predict import predict
from cosim.validate.reference import load_measurements
from cosim.workloads.params import params_total

MAPPING = load_mapping()
V09 = {r.id: r for r in load_measurements() if r.id.startswith("trtllm-v0.9-")}


def _predict(row_id: str) -> float | None:
    q = MAPPING.rows[row_id]
    return predict(q, MAPPING, calibrated_params(load_hardware(q.hardware)))[0]


def test_every_v09_cell_is_in_the_reference_data_and_mapped():
    # 4 chips x 6 models x 4 throughput cells + 4 chips x 6 models x 2 first-token cells
    assert len(V09) == 96 + 48
    assert [i for i in V09 if i not in MAPPING.rows] == []
    # spot checks against the document: H100 Llama 2 70B TP4 batch 512, 128 in / 2048 out; H200 Mistral TTFT
    assert V09["trtllm-v0.9-llama2-70b-h100-tp4-b512-128-2048"].value == 2725.0
    assert V09["trtllm-v0.9-ttft-mistral-7b-h200-tp1-2048"].value == pytest.approx(0.0317)


def test_mistral_7b_parameter_count_from_its_shapes():
    # embedding + untied head 2 x 32000 x 4096; per layer q, o 4096^2 each, k, v 4096 x 1024 each,
    # SwiGLU 3 x 4096 x 14336, two norms of 4096; 32 layers; the final norm
    layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    expected = 32 * layer + 2 * 32000 * 4096 + 4096
    assert expected == 7_241_732_096
    model = load_workload("mistral-7b")
    assert params_total(model) == pytest.approx(expected, rel=1e-9)
    assert model.published_params_total == expected


def test_the_same_h100_cell_ran_1_8x_faster_with_the_2024_gqa_kernel():
    """Llama 2 70B on H100 FP8 at 128 in / 2048 out, TP4: 1,486 tokens/s per GPU at batch 480 in v0.6.1 and
    2,725 at batch 512 in v0.9.0, whose recipe exports TRTLLM_ENABLE_XQA=1 (the XQA kernel shipped with v0.8).
    With a GQA kernel's shared KV read cosim is within 35% of the v0.9 cell and 2.4x the v0.6.1 one; the v0.6.1
    cell, mapped with the read once per query head, is within 15%."""
    old = next(r for r in load_measurements() if r.id == "trtllm-v0.6-llama2-70b-h100-tp4-b480-128-2048")
    new = V09["trtllm-v0.9-llama2-70b-h100-tp4-b512-128-2048"]
    assert new.value / old.value == pytest.approx(1.83, abs=0.01)
    pred = _predict(new.id)
    assert pred is not None
    assert pred == pytest.approx(new.value, rel=0.35)
    q_old = MAPPING.rows[old.id]
    assert q_old.kv_read_per_query_head and not MAPPING.rows[new.id].kv_read_per_query_head
    assert _predict(old.id) == pytest.approx(old.value, rel=0.15)
    params = calibrated_params(load_hardware("h100-sxm"))
    shared = predict(q_old.model_copy(update={"kv_read_per_query_head": False}), MAPPING, params)[0]
    assert shared > 2.0 * old.value


MISTRAL_HOPPER = sorted(i for i in V09 if i.startswith(("trtllm-v0.9-mistral-7b-h100", "trtllm-v0.9-mistral-7b-h200")))


def test_mistral_on_hopper_reads_its_kv_cache_once_per_query_head():
    """The document's recipes export TRTLLM_ENABLE_XQA=1 for Llama 2 70B and Falcon 180B only, and call the XQA
    kernels 'experimental and not enabled by default', so the Mistral and Mixtral rows are mapped with
    `kv_read_per_query_head`. Priced with a GQA kernel's shared read, Mistral 7B's Hopper cells would be
    1.33-1.87x the published rates (1.4-2.3x before session 43's refit put each kernel's fixed time at 5.8 us,
    which a 7B model's short steps feel most); read once per query head, each is within 30%."""
    assert len(MISTRAL_HOPPER) == 8
    for row_id in MISTRAL_HOPPER:
        q = MAPPING.rows[row_id]
        assert q.kv_read_per_query_head and "XQA" in q.assumed
        params = calibrated_params(load_hardware(q.hardware))
        measured = V09[row_id].value
        per_head = predict(q, MAPPING, params)[0]
        shared = predict(q.model_copy(update={"kv_read_per_query_head": False}), MAPPING, params)[0]
        assert shared > 1.3 * measured, row_id
        assert per_head == pytest.approx(measured, rel=0.30), row_id


def test_only_the_rows_without_an_xqa_kernel_read_per_query_head():
    """v0.9.0's Mistral and Mixtral cells (no XQA recipe), Falcon 180B's in both tables (XQA did not take its
    29 query heads per KV head: tests/test_catalog_falcon.py) and v0.6.1's Llama 2 70B cells (before v0.8's
    XQA)."""
    flagged = {i for i, q in MAPPING.rows.items() if q.kv_read_per_query_head}
    v09 = {i for i in V09 if i in MAPPING.rows and "ttft" not in i
           and i.startswith(("trtllm-v0.9-mistral-7b-", "trtllm-v0.9-mixtral-8x7b-", "trtllm-v0.9-falcon-180b-"))}
    v06 = {i for i in MAPPING.rows if i.startswith(("trtllm-v0.6-llama2-70b-", "trtllm-v0.6-falcon-180b-"))}
    # and, on their chunked layers only, Llama 4 Maverick's H200 cells (tests/test_catalog_llama4_gemma3.py)
    hopper_llama4 = {i for i in MAPPING.rows if i.startswith("trtllm-perf2-llama4-maverick-h200-")}
    assert len(hopper_llama4) == 5
    assert all(MAPPING.rows[i].kv_read_per_query_head_layers == "windowed" for i in hopper_llama4)
    assert flagged == v09 | v06 | hopper_llama4
    assert len(v09) == 32 + 16 and len(v06) == 7 + 6


def test_the_a100_mixtral_batch_32_cell_read_per_gpu_is_beyond_the_memory_roofline():
    """801 tokens/s per GPU on two A100s at batch 32 (2048 in, 2048 out) is a decode step of at most 20 ms,
    in which the pair reads less than Mixtral 8x7B's FP16 weights: the cell is kept, at medium reliability."""
    row = V09["trtllm-v0.9-mixtral-8x7b-a100-tp2-b32-2048-2048"]
    step_s = 32 / (row.value * 2)
    readable = 2 * 2.039e12 * step_s
    weights = 46.7e9 * 2
    assert readable < 0.9 * weights
    assert 1 - (6 / 8) ** 32 > 0.9998  # every expert is read in a step of 32 tokens (top-2 of 8)
    assert row.reliability == "medium"


@pytest.mark.parametrize("row_id", ["trtllm-v0.9-llama2-70b-l40s-tp4-b256-128-2048",
                                    "trtllm-v0.9-mixtral-8x7b-l40s-tp4-b32-2048-2048",
                                    "trtllm-v0.9-ttft-llama2-70b-l40s-tp8-128"])
def test_l40s_tensor_parallel_runs_over_pcie_are_predicted(row_id):
    # the L40S has no NVLink: its TP groups all-reduce over PCIe within one server (up to 8 cards)
    assert load_hardware("l40s").interconnect.scale_up.domain_size.value == 8
    pred = _predict(row_id)
    assert pred is not None and pred > 0


MIXTRAL_8BIT = sorted(i for i in V09 if i in MAPPING.rows
                      and i.startswith(("trtllm-v0.9-mixtral-8x7b-", "trtllm-v0.9-ttft-mixtral-8x7b-"))
                      and "-a100-" not in i)


def test_v09_mixtral_streams_8_bit_weights_faster_than_16_bit_ones_could():
    """The H100 first-token cell (batch 1, 128 tokens: with top-2 of 8 every expert is hit) took 13.4 ms, below
    the 13.9 ms two H100s need to stream Mixtral's 46.7e9 parameters at 2 bytes (3.35 TB/s each): the weights
    were 8-bit. The release notes list 'Added FP8 quantization support for Mixtral' under 0.10.0, so v0.9.0's
    MoE plugin multiplied in 16 bits: the FP8-table cells are mapped W8A16."""
    row = V09["trtllm-v0.9-ttft-mixtral-8x7b-h100-tp2-128"]
    bandwidth = load_hardware("h100-sxm").main_memory.bandwidth_bytes_per_s.value
    assert bandwidth == pytest.approx(3.35e12)
    floor_16_bit_s = 46.7e9 * 2 / 2 / bandwidth
    assert floor_16_bit_s == pytest.approx(13.94e-3, rel=1e-3)
    assert row.value < floor_16_bit_s
    assert 1 - (6 / 8) ** 128 > 0.999999  # P(an expert is hit) with 128 tokens
    assert len(MIXTRAL_8BIT) == 18  # H200, H100 and L40S: 4 static cells and 2 first-token cells each
    for row_id in MIXTRAL_8BIT:
        q = MAPPING.rows[row_id]
        assert (q.precision, q.activation_precision) == ("fp8", "fp16"), row_id
        assert "0.10.0" in q.assumed, row_id


@pytest.mark.parametrize("row_id", ["trtllm-v0.9-mixtral-8x7b-h200-tp2-b1024-128-128",
                                    "trtllm-v0.9-mixtral-8x7b-h100-tp2-b512-128-128",
                                    "trtllm-v0.9-mixtral-8x7b-h200-tp2-b64-2048-128",
                                    "trtllm-v0.9-mixtral-8x7b-h100-tp2-b64-2048-128"])
def test_v09_mixtral_prompt_heavy_cells_run_at_the_16_bit_multiply_add_rate(row_id):
    """Where prompts dominate, the expert GEMMs are compute-bound: priced with FP8 multiply-adds these cells
    would be 1.5-2x the published rates; with 16-bit ones each is within 25%."""
    q = MAPPING.rows[row_id]
    measured = V09[row_id].value
    params = calibrated_params(load_hardware(q.hardware))
    w8a16 = predict(q, MAPPING, params)[0]
    w8a8 = predict(q.model_copy(update={"activation_precision": None}), MAPPING, params)[0]
    assert w8a8 > 1.45 * measured
    assert w8a16 == pytest.approx(measured, rel=0.25)
