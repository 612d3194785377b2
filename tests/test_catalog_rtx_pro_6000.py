"""The RTX PRO 6000 Blackwell Server Edition: its spec's physics, its TensorRT-LLM cells, and pipelines kept
out of the fit.

Figures are typed in from the sources the spec cites (NVIDIA's product page, TensorRT-LLM's v1.0 Performance
Overview), not read back from the YAML files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cosim.specs.loader import load_hardware, load_workload
from cosim.workloads.params import params_total

REPO = Path(__file__).resolve().parent.parent
REF = REPO / "cosim" / "data" / "reference"
SLUG = "rtx-pro-6000-blackwell"

#: TensorRT-LLM v1.0 perf-overview, "RTX 6000 Pro Blackwell Server Edition" tables (total output tokens/s):
#: (model prefix, ISL, OSL, GPUs, TP, PP) -> value
TABLE_CELLS = {
    ("llama3.3-70b", 128, 128, 1, 1, 1): 3264, ("llama3.3-70b", 128, 128, 8, 1, 8): 11881,
    ("llama3.3-70b", 20000, 2000, 4, 1, 4): 630, ("llama3.3-70b", 2048, 128, 2, 1, 2): 813,
    ("llama3.1-405b", 1000, 2000, 8, 1, 8): 1931, ("qwen3-30b-a3b", 5000, 500, 1, 1, 1): 2530,
}


def _rows() -> dict[str, dict]:
    records = yaml.safe_load((REF / "measurements_added.yaml").read_text())["records"]
    return {r["id"]: r for r in records if "rtxpro6000" in r["id"]}


def _mapping() -> dict[str, dict]:
    rows = yaml.safe_load((REF / "mapping.yaml").read_text())["rows"]
    return {k: v for k, v in rows.items() if "rtxpro6000" in k}


def test_peaks_are_nvidias_sparse_figures_halved_and_ordered_by_width():
    hw = load_hardware(SLUG)
    # product page: FP4 4 PFLOPS, FP8 2 PFLOPS, FP16/BF16 1 PFLOP, all with 2:4 sparsity
    assert hw.peak_flops("fp4") == pytest.approx(4e15 / 2)
    assert hw.peak_flops("fp8") == pytest.approx(2e15 / 2)
    assert hw.peak_flops("bf16") == pytest.approx(1e15 / 2)
    # the ridge point of FP4 GEMMs against GDDR7: 2e15 / 1.597e12 = 1,252 FLOP per byte
    ridge = hw.peak_flops("fp4") / hw.main_memory.bandwidth_bytes_per_s.value
    assert ridge == pytest.approx(2e15 / 1.597e12, rel=1e-9)


def test_batch_one_decode_is_bounded_by_streaming_the_fp4_weights():
    """One 70B decode step at batch 1 reads every FP4 weight once: no faster than the weights at the datasheet
    bandwidth, and within 2x of it (a memory-bound step)."""
    from cosim.engines.estimate import estimate
    from cosim.specs.scenario import Scenario

    model = load_workload("llama-3.3-70b")
    embed = model.vocab_size * model.hidden_size * 2  # input embedding and LM head stay 16-bit
    floor_s = (params_total(model) - embed) * 0.5625 / 1.597e12  # NVFP4: 4.5 bits a weight, at 1,597 GB/s
    assert floor_s == pytest.approx(0.0241, rel=0.02)  # 68.4e9 x 0.5625 B / 1.597e12 B/s
    sc = Scenario(phase="decode", batch=1, input_len=1024, output_len=1, weight_precision="fp4",
                  activation_precision="fp4", kv_precision="fp8")
    res = estimate(SLUG, "llama-3.3-70b", sc)
    assert floor_s <= res.tpot_s <= 2 * floor_s


def test_every_table_cell_is_in_the_reference_data_with_its_layout():
    rows, mapping = _rows(), _mapping()
    assert len(rows) == 56 and set(rows) == set(mapping)  # 40 + 6 + 10 cells, every one mapped
    for (model, isl, osl, gpus, tp, pp), value in TABLE_CELLS.items():
        layout = f"tp{tp}" if pp == 1 else f"tp{tp}pp{pp}"
        rid = f"trtllm-perf-{model}-rtxpro6000-{layout}-{isl}-{osl}"
        row, q = rows[rid], mapping[rid]
        assert row["value"] == value
        assert row["per_accelerator_value"] == pytest.approx(value / gpus, abs=0.05)
        assert (q["chips"], q["tp"], q.get("pp", 1)) == (gpus, tp, pp)
        assert q["hardware"] == SLUG and q["precision"] == "fp4" and q["stack"] == "trtllm-bench"


def test_pipelined_rows_fit_only_the_stacks_pipeline_host_time():
    """No inference row run as a pipeline sets a chip's scales or the MoE shares: TensorRT-LLM's pipelined
    cells fit trtllm-bench's host time per sequence per pipelined iteration, the others (MLPerf's) are held out."""
    from cosim.validate.runner import query_for

    cal = yaml.safe_load((REPO / "cosim" / "data" / "calibration.yaml").read_text())
    fitted = [r for fam in cal["families"].values() for r in fam.get("rows", [])] + cal["moe"]["rows"]
    assert fitted and not [r for r in fitted
                           if query_for(r).pp > 1 and not query_for(r).kind.startswith("training")]
    pipelined = {k for k, v in _mapping().items() if v.get("pp", 1) > 1}
    stack = cal["stacks"]["trtllm-bench"]
    assert len(pipelined) == 36 and set(stack["pipeline_host_rows"]) == pipelined
    assert 0.0 < stack["pipeline_host_per_sequence_s"] < 5e-4  # within the fit's bounds
    assert "mlperf-v5.1-b200x8-llama3.1-405b-offline" in cal["held_out"]["rows"]  # TP2 x PP2, stack tuned
    assert cal["families"]["nvidia-blackwell-rtx"]["match"] == ["rtx-pro-6000*"]
