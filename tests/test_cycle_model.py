"""Cycle engine: whole-model API (GPU waves, systolic chips) and the `cosim cycles` CLI contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cosim.cli.main import main
from cosim.engines.cycle import explain, gemm_time_s
from cosim.engines.cycle.gpu import gemm_waves
from cosim.graph.optable import OpTable
from cosim.specs.loader import load_hardware

TPU = str(Path(__file__).parent / "data" / "tpu-v5e-like.yaml")


def _ops(m, k, n):
    return OpTable.from_rows([
        {"name": "gemm", "kind": 0, "m": m, "k": k, "n": n, "precision": 2},
        {"name": "norm", "kind": 3},
    ])


@pytest.mark.parametrize("spec", ["h100-sxm", TPU])
def test_large_gemm_agrees_with_flops_over_peak(spec):
    hw = load_hardware(spec)
    secs = gemm_time_s(hw, _ops(8192, 8192, 8192))
    ideal = 2 * 8192**3 / hw.peak_flops("bf16")
    assert secs[0] == pytest.approx(ideal, rel=0.10)
    assert math.isnan(secs[1])


def test_gpu_waves_tail_and_split_k():
    # 132 SMs, 128x256 tiles: M=N=4096 -> 32*16 = 512 tiles -> ceil(512/132) = 4 waves, 97% full
    r = gemm_waves(4096, 4096, 4096, sms=132, peak_flops=989.4e12, hbm_bytes_per_s=3.35e12, bytes_per_el=2,
                   tm=128, tn=256, tk=64)
    assert r["tiles"] == 512 and r["waves"] == 4 and r["wave_efficiency"] == pytest.approx(512 / 528)
    # decode-shaped GEMM: 1 x 8192 x 1024 -> 4 tiles, K split to fill the SMs
    d = gemm_waves(1, 8192, 1024, sms=132, peak_flops=989.4e12, hbm_bytes_per_s=3.35e12, bytes_per_el=2,
                   tm=128, tn=256, tk=64)
    assert d["tiles"] == 4 and d["split_k"] == 33
    # memory bound: at least the weight bytes over HBM bandwidth
    assert d["seconds"] >= 8192 * 1024 * 2 / 3.35e12


def test_explain_names_tiny_m():
    hw = load_hardware(TPU)
    frame = explain(hw, _ops(4, 4096, 4096))
    assert "tiny M" in frame.loc[0, "reason"]
    assert frame.loc[0, "utilization"] < 0.1
    assert np.isnan(frame.loc[1, "seconds"])


def test_cli_json_contract(capsys):
    code = main(["cycles", "--rows", "4", "--cols", "4", "--dataflow", "ws", "--m", "4", "--k", "4", "--n", "4",
                 "--ideal-bw", "--format", "json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["compute_cycles", "stall_cycles", "total_cycles", "utilization", "mapping_efficiency",
                          "sram_reads", "sram_writes", "dram_reads", "dram_writes", "folds"]
    assert data["compute_cycles"] == 13 and data["folds"] == 1
    assert set(data["dram_reads"]) == {"ifmap", "filter", "ofmap"}


def test_cli_hardware_and_help(capsys):
    assert main(["cycles", "--hardware", TPU, "--m", "256", "--k", "256", "--n", "256", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["folds"] == 4 * 2  # N split over 4 arrays -> N=64 each: 2 row folds (K=256) x 1 col fold, summed
    assert main(["cycles", "--help"]) == 0
    assert "filter" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--dataflow", "xy"], "dataflow"),
    (["--m", "0"], "--m"),
    (["--k", "-2"], "--k"),
    (["--ifmap-sram-kb", "0.01"], "ifmap SRAM too small"),
])
def test_cli_bad_input(capsys, args, needle):
    base = {"--rows": "8", "--cols": "8", "--dataflow": "os", "--m": "4", "--k": "4", "--n": "4"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["cycles"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_cycle_mode_runs_a_chip_at_the_precision_it_would_use(capsys, tmp_path):
    """Groq's LPU lists FP16 and INT8 peaks but no BF16: `estimate --mode cycle` at the default BF16 runs at
    the FP16 rate, as the analytical engine does (an internal TypeError before session 35); a spec with no
    usable peak gets one readable line and exit 2."""
    hw = load_hardware("groq-lpu")
    assert hw.peak_flops("bf16") is None and hw.peak_flops("fp16") == 188e12
    bf16 = gemm_time_s(hw, _ops(4096, 4096, 4096))[0]
    fp16 = OpTable.from_rows([{"name": "gemm", "kind": 0, "m": 4096, "k": 4096, "n": 4096, "precision": 3}])
    assert bf16 == pytest.approx(gemm_time_s(hw, fp16)[0], rel=1e-12)
    assert bf16 >= 2 * 4096**3 / 188e12
    assert main(["estimate", "--hardware", "groq-lpu", "--workload", "llama-2-7b", "--mode", "cycle",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_s"] > 0
    spec = (Path(__file__).resolve().parent.parent / "hardware_specs" / "groq-lpu.yaml").read_text()
    int8_only = tmp_path / "int8-only.yaml"
    int8_only.write_text(spec.replace("    fp16: {value: 188 TFLOPS, source: tpu_groq}\n", ""))
    assert main(["estimate", "--hardware", str(int8_only), "--workload", "llama-2-7b", "--mode", "cycle"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no peak FLOP/s for bf16" in err[0]


def test_systolic_attention_skips_the_blocks_a_causal_mask_drops():
    """A causal prefill of s tokens attends s (s + 1) / 2 (query, key) pairs per head, not s^2: on a systolic
    chip its two GEMMs run that share of their tiles (FlashAttention-style block skipping), so the causal core
    takes (s + 1) / (2 s) of the time of the same core attending every pair."""
    hw = load_hardware(TPU)
    s, heads, d = 8192, 32, 128

    def core(pairs):
        return {"name": "attn", "kind": 2, "precision": 2, "batch": 1, "heads": heads, "kv_heads": 8, "q_len": s,
                "kv_len": s, "head_dim": d, "head_dim_v": d, "causal": 1, "flops": 2.0 * heads * pairs * 2 * d}

    full, causal = gemm_time_s(hw, OpTable.from_rows([core(s * s), core(s * (s + 1) / 2)]))
    assert causal / full == pytest.approx((s + 1) / (2 * s), rel=1e-9)
