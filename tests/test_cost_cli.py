"""`cosim cost`: JSON keys, table and CSV output, the example finance file, one-line bad-input errors."""

import json

import pytest

from cosim.cli.main import main

BASE = ["cost", "--hardware", "h100-sxm", "--tokens-per-s-per-chip", "2400"]


def test_json_has_the_documented_keys(capsys):
    code = main(BASE + ["--inputs", "examples/cost/finance_inputs.yaml", "--target-tokens-per-day", "5e9",
                        "--monte-carlo", "2000", "--seed", "3", "--tornado", "--format", "json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("hardware", "mode", "inputs", "capacity", "cloud", "owned", "fleet", "break_even_utilization",
                "monte_carlo", "tornado", "sources"):
        assert key in data
    assert set(data["owned"]["breakdown_usd_per_chip_hour"]) == {
        "capex_accelerator", "capex_server", "capex_network", "financing", "energy", "hosting", "operations"}
    mc = data["monte_carlo"]
    assert mc["owned"]["p10"] <= mc["owned"]["p50"] <= mc["owned"]["p90"]
    assert data["inputs"]["cloud_price_usd_per_hour"]["date"] == "2025-03"
    assert data["fleet"]["chips"] >= 1


def test_spec_price_is_used_with_its_date(capsys):
    assert main(BASE + ["--mode", "cloud", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cloud"]["usd_per_chip_hour"] == 12.29
    assert data["inputs"]["cloud_price_usd_per_hour"]["date"] == "2025-03"
    assert data["cloud"]["usd_per_token"] == 12.29 / (3600 * 2400)


def test_table_and_csv(capsys):
    assert main(BASE + ["--tornado", "--monte-carlo", "200"]) == 0
    out = capsys.readouterr().out
    assert "owned TCO per chip-hour" in out and "tornado" in out
    assert main(BASE + ["--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "section,mode,item,value"
    assert any(line.startswith("unit_cost,cloud,usd_per_million_output_tokens,") for line in lines)


@pytest.mark.parametrize("setting, field", [
    ("cloud_price_usd_per_hour=-1", "cloud_price_usd_per_hour"),
    ("accelerator_price_usd=-5", "accelerator_price_usd"),
    ("pue=0.95", "pue"),
    ("utilization=0", "utilization"),
    ("utilization=1.2", "utilization"),
    ("lifetime_years=0", "lifetime_years"),
])
def test_bad_input_exits_2_with_one_line_naming_the_field(capsys, setting, field):
    assert main(BASE + ["--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and field in err and err.startswith("error:")


def test_bad_value_in_finance_file_names_file_and_field(tmp_path, capsys):
    path = tmp_path / "fin.yaml"
    path.write_text("pue: 0.9\n")
    assert main(BASE + ["--inputs", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pue" in err and "fin.yaml" in err


def test_unknown_finance_key_suggests_spelling(tmp_path, capsys):
    path = tmp_path / "fin.yaml"
    path.write_text("electricity_usd_per_kw: 0.1\n")
    assert main(BASE + ["--inputs", str(path)]) == 2
    assert "electricity_usd_per_kwh" in capsys.readouterr().err


def test_negative_throughput_exits_2(capsys):
    assert main(["cost", "--hardware", "h100-sxm", "--tokens-per-s-per-chip", "-3"]) == 2
    assert "tokens_per_s_per_chip" in capsys.readouterr().err


@pytest.mark.slow
def test_workload_path_uses_the_engine_when_present(capsys):
    pytest.importorskip("cosim.engines.estimate")
    code = main(["cost", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--batch", "64", "--mode", "cloud",
                 "--format", "json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["capacity"]["source"].startswith("cosim.engines.estimate")
    tps = data["capacity"]["output_tokens_per_s_per_chip"]
    assert data["cloud"]["usd_per_token"] == 12.29 / (3600 * tps)
