"""The GH200 Grace Hopper Superchip (144 GB HBM3e): the H100's compute beside more, faster memory, calibrated as
Hopper, and its two MLPerf v4.1 Offline runs.

Figures are typed in from the sources the spec and the rows cite (NVIDIA's GH200 page, the MLPerf v4.1 results
and configs), not read back from the YAML files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cosim.cli.common import build_scenario
from cosim.specs.loader import load_hardware, load_workload
from cosim.workloads.params import params_total

REPO = Path(__file__).resolve().parent.parent
REF = REPO / "cosim" / "data" / "reference"
SLUG = "gh200-144gb"


def test_same_compute_as_the_h100_more_memory_than_the_h200():
    gh, h100, h200 = load_hardware(SLUG), load_hardware("h100-sxm"), load_hardware("h200-sxm")
    for prec in ("bf16", "fp8"):
        assert gh.peak_flops(prec) == pytest.approx(h100.peak_flops(prec), rel=1e-9)
    assert gh.compute.compute_units.value == 132
    # six 24 GB HBM3e stacks all enabled (141 GB of them on the H200): 144 / 141 of the H200's driver total
    assert gh.main_memory.capacity_bytes.value / h200.main_memory.capacity_bytes.value == pytest.approx(144 / 141,
                                                                                                       rel=1e-5)
    assert gh.main_memory.bandwidth_bytes_per_s.value == pytest.approx(4.9e12, rel=1e-9)


def test_calibrated_as_hopper():
    """The GH200's GPU is a GH100: it takes the nvidia-hopper generation's fitted scales, the H100's."""
    from cosim.engines.calibration import calibrated_params

    gh, h100 = calibrated_params(load_hardware(SLUG)), calibrated_params(load_hardware("h100-sxm"))
    assert list(gh.compute_fraction) == list(h100.compute_fraction) and gh.memory_fraction == h100.memory_fraction


def test_batch_one_decode_streams_the_weights_at_the_faster_memory():
    """A batch-1 Llama 2 70B FP8 decode step is bound by reading 69 GB of weights: no faster than at 4.9 TB/s, and
    faster than the H100's by nearly the bandwidth ratio (3.35 / 4.9 = 0.68; launch overheads are the same)."""
    from cosim.api import estimate

    sc = build_scenario(phase="decode", batch=1, input_len=1024, precision="fp8")
    model = load_workload("llama-2-70b")
    tables = 2 * model.vocab_size * model.hidden_size  # the embedding and LM head stay BF16
    floor_s = (params_total(model) - tables) * 1.0 / 4.9e12
    gh, h100 = estimate(SLUG, "llama-2-70b", sc), estimate("h100-sxm", "llama-2-70b", sc)
    assert gh.tpot_s >= floor_s
    assert 3.35 / 4.9 <= gh.tpot_s / h100.tpot_s <= 0.75


def test_mlperf_rows_with_their_stated_engine_settings():
    rows = {r["id"]: r for r in yaml.safe_load((REF / "measurements_added.yaml").read_text())["records"]}
    mapping = yaml.safe_load((REF / "mapping.yaml").read_text())["rows"]
    # result_tokens_per_second of the v4.1 GH200 x1 logs
    assert rows["mlperf-v4.1-gh200-x1-llama2-offline"]["value"] == 4067.52
    assert rows["mlperf-v4.1-gh200-x1-mixtral-offline"]["value"] == 8021.46
    q = mapping["mlperf-v4.1-gh200-x1-llama2-offline"]
    # configs/llama2-70b/Offline: GH200_144GB_aarch64x1, TP1, gpu_batch_size 806, kvcache_free_gpu_mem_frac 0.90
    assert (q["hardware"], q["tp"], q["max_seqs"], q["kv_cache_fraction"]) == (SLUG, 1, 806, 0.90)
