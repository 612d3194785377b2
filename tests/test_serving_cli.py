"""`cosim serve`: the JSON contract, replicas from --chips, bad input, and agreement with the engine."""

from __future__ import annotations

import json

import pytest

from cosim.cli.main import main
from cosim.serving.service import CONTRACT_KEYS

BASE = ["serve", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b", "--precision", "bf16"]


def run_json(capsys, args):
    code = main(BASE + args + ["--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_json_contract_and_lone_request_matches_engine(capsys):
    res = run_json(capsys, ["--chips", "1", "--offline", "--num-requests", "1", "--input-len", "512",
                            "--output-len", "64"])
    assert set(CONTRACT_KEYS) <= set(res)
    assert res["feasible"] is True and res["replicas"] == 1
    if res["step_model"] != "analytical-engine":
        pytest.skip("analytical engine not importable")
    from cosim.cli.common import build_scenario
    from cosim.engines.hwarrays import HardwareArrays
    from cosim.engines.vectorized import evaluate_points
    from cosim.specs.loader import load_hardware

    sc = build_scenario(phase="generate", input_len=512, output_len=64, precision="bf16")
    hw = load_hardware("h100-sxm")
    eng = evaluate_points(HardwareArrays.from_hardware(hw), "llama-3.1-8b", sc, hardware=hw)  # same params
    assert res["ttft_p50_s"] == pytest.approx(float(eng["ttft_s"][0]), rel=1e-9)
    assert res["tpot_p50_s"] == pytest.approx(float(eng["tpot_s"][0]), rel=0.01)


def test_chips_beyond_one_replica_make_several(capsys):
    res = run_json(capsys, ["--chips", "4", "--tp", "2", "--offline", "--num-requests", "40",
                            "--input-len", "uniform:100:300", "--output-len", "32", "--router", "round_robin"])
    assert res["replicas"] == 2 and res["chips_per_replica"] == 2
    assert res["max_qps_at_slo"] is None and res["goodput_requests_per_s"] is None


def test_online_with_slo_and_max_qps(capsys):
    res = run_json(capsys, ["--chips", "2", "--qps", "5", "--duration", "20", "--input-len", "256",
                            "--output-len", "64", "--slo-ttft", "1.0", "--slo-tpot", "0.1", "--find-max-qps",
                            "--scheduler", "chunked", "--max-batched-tokens", "512"])
    assert res["goodput_requests_per_s"] is not None
    assert res["max_qps_at_slo"] is not None and res["max_qps_at_slo"] > 0
    assert res["usd_per_million_output_tokens"] is not None and res["usd_per_million_output_tokens"] > 0


def test_disaggregated_and_table_output(capsys):
    res = run_json(capsys, ["--chips", "2", "--qps", "2", "--duration", "10", "--input-len", "256",
                            "--output-len", "32", "--scheduler", "disaggregated"])
    assert res["feasible"] is True and res["replicas"] == 2
    code = main(BASE + ["--chips", "1", "--offline", "--num-requests", "5", "--input-len", "64",
                        "--output-len", "8"])
    out, _ = capsys.readouterr()
    assert code == 0 and "output_tokens_per_s" in out


def test_infeasible_is_a_result_not_an_error(capsys):
    res = run_json(capsys, ["--chips", "1", "--offline", "--num-requests", "2", "--input-len", "64",
                            "--output-len", "8", "--scheduler", "disaggregated"])
    assert res["feasible"] is False and "2 replicas" in res["reason"]
    big = run_json(capsys, ["--chips", "1", "--offline", "--num-requests", "1", "--input-len", "900000",
                            "--output-len", "8"])
    assert big["feasible"] is False and "KV cache" in big["reason"]


@pytest.mark.parametrize("args, needle", [
    (["--qps", "0", "--duration", "10", "--input-len", "10", "--output-len", "10"], "--qps"),
    (["--qps", "-1", "--duration", "10", "--input-len", "10", "--output-len", "10"], "--qps"),
    (["--qps", "1", "--duration", "0", "--input-len", "10", "--output-len", "10"], "--duration"),
    (["--offline", "--num-requests", "0", "--input-len", "10", "--output-len", "10"], "--num-requests"),
    (["--offline", "--num-requests", "3", "--input-len", "0", "--output-len", "10"], "--input-len"),
    (["--offline", "--num-requests", "3", "--input-len", "10", "--output-len", "-5"], "--output-len"),
    (["--offline", "--num-requests", "3", "--input-len", "10", "--output-len", "5", "--slo-ttft", "0"], "--slo-ttft"),
    (["--offline", "--num-requests", "3", "--input-len", "10", "--output-len", "5", "--scheduler", "fifo"], "--scheduler"),
    (["--input-len", "10", "--output-len", "10"], "--qps"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    code = main(BASE + ["--chips", "1"] + args)
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_bad_trace_exits_2_naming_the_line(capsys, tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("arrival_time_s,input_len,output_len\n0.5,10,5\n0.1,10,5\n")
    code = main(BASE + ["--chips", "1", "--input-len", f"trace:{bad}", "--output-len", f"trace:{bad}"])
    _, err = capsys.readouterr()
    assert code == 2 and "line 3" in err and len(err.strip().splitlines()) == 1
    good = tmp_path / "g.csv"
    good.write_text("arrival_time_s,input_len,output_len\n0.0,100,5\n0.2,50,7\n0.4,80,3\n")
    res = run_json(capsys, ["--chips", "1", "--input-len", f"trace:{good}", "--output-len", f"trace:{good}"])
    assert res["feasible"] is True


def test_cuda_graph_sizes_pad_the_decode_iterations(capsys):
    """A lone request decodes one sequence a step; with graphs captured at 256 its decode iterations run the
    256-sequence step (slower), its prefill does not change; a malformed list is one readable error."""
    args = ["--chips", "1", "--offline", "--num-requests", "1", "--input-len", "512", "--output-len", "64"]
    plain = run_json(capsys, args)
    padded = run_json(capsys, args + ["--cuda-graph-sizes", "256,512"])
    assert padded["tpot_p50_s"] > plain["tpot_p50_s"]
    assert padded["ttft_p50_s"] == pytest.approx(plain["ttft_p50_s"], rel=1e-12)
    assert main(BASE + args + ["--cuda-graph-sizes", "0,8"]) == 2
    assert "--cuda-graph-sizes" in capsys.readouterr().err
