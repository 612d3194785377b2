"""End-to-end CLI contracts across layers: energy and $ in estimate, --mapping auto, uncertainty bands."""

import json

import pytest

from cosim.cli.main import main
from cosim.specs import load_hardware

BASE = ["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--format", "json"]


def test_estimate_dollars_follow_the_cloud_price_exactly(capsys):
    assert main(BASE + ["--phase", "decode", "--batch", "32", "--input-len", "1024"]) == 0
    d = json.loads(capsys.readouterr().out)
    price = load_hardware("h100-sxm").cost.cloud_price_usd_per_hour.value
    # $/M tokens = $/hour / (3600 s/h x tokens/s) x 1e6, one chip
    assert d["usd_per_million_tokens"] == pytest.approx(price / (3600 * d["throughput_tokens_per_s"]) * 1e6,
                                                       rel=1e-9)
    # accelerator energy per token = average power x step time / tokens per step (one chip, decode)
    assert d["energy_j_per_token"] == pytest.approx(d["avg_power_w"] * d["tpot_s"] / 32, rel=1e-6)
    assert d["avg_power_w"] <= load_hardware("h100-sxm").power.tdp_w.value + 1e-9
    assert d["system_energy_j_per_token"] >= d["energy_j_per_token"]
    assert d["facility_energy_j_per_token"] >= d["system_energy_j_per_token"]


def test_mapping_auto_meets_the_slo_and_reports_its_choice(capsys):
    assert main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-70b", "--phase", "decode",
                 "--input-len", "2048", "--mapping", "auto", "--slo-tpot", "0.05", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is True and d["tpot_s"] <= 0.05
    assert set(d["mapping"]) == {"tp", "pp", "ep", "batch", "precision"}
    assert d["batch"] == d["mapping"]["batch"]


def test_mapping_auto_with_an_impossible_slo_is_one_line_exit_2(capsys):
    code = main(["estimate", "--hardware", "h100-sxm", "--workload", "llama-3.1-405b", "--phase", "decode",
                 "--mapping", "auto", "--slo-tpot", "0.000001", "--format", "json"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "SLO" in err


def test_with_uncertainty_adds_bands(capsys):
    assert main(BASE + ["--phase", "decode", "--batch", "8", "--with-uncertainty"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "uncertainty" in d and "throughput_tokens_per_s" in d["uncertainty"]
    band = d["uncertainty"]["throughput_tokens_per_s"]
    if band is not None:  # present once a calibration with enough rows is stored
        assert band["p10"] <= band["p90"] and band["n"] >= 3


def test_cycle_mode_table_compares_engines_per_op():
    """Issue 4 §3: large well-shaped GEMMs agree within 10% between the analytical and cycle engines."""
    from cosim.cli.common import build_scenario
    from cosim.engines.compare_modes import analytical_vs_cycle

    sc = build_scenario(phase="prefill", batch=4, input_len=1024, tp=4)
    cmp = analytical_vs_cycle("tpu-v5e", "llama-3.1-8b", sc, chips=4)
    big = cmp[cmp["name"].isin(["mlp.gate_up_proj", "mlp.down_proj"])]
    assert len(big) == 2
    assert ((big["cycle_over_analytical"] - 1).abs() <= 0.10).all()
    assert set(cmp["reason"].dropna()) and (cmp["time_s_cycle"] > 0).all()


def test_cost_fleet_at_an_slo_uses_the_serving_simulator(capsys):
    assert main(["cost", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--precision", "fp8",
                 "--input-len", "500", "--output-len", "100", "--slo-ttft", "1", "--slo-tpot", "0.05",
                 "--target-tokens-per-day", "1e10", "--mode", "cloud", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    tps = d["capacity"]["output_tokens_per_s_per_chip"]
    assert tps > 0 and "cosim serve" in d["capacity"]["source"]
    # busy chips = daily tokens / (tokens per chip-second x 86400 s)
    assert d["fleet"]["busy_chips"] == pytest.approx(1e10 / (tps * 86400), rel=1e-9)
    assert d["fleet"]["chips"] >= d["fleet"]["busy_chips"]


def test_cost_slo_without_workload_is_exit_2(capsys):
    assert main(["cost", "--hardware", "h100-sxm", "--slo-ttft", "1", "--tokens-per-s-per-chip", "100"]) == 2
    assert "--workload" in capsys.readouterr().err
