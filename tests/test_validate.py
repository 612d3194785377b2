"""cosim validate: reference data integrity, error arithmetic, bands, the regression gate, bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from cosim.cli.main import main
from cosim.errors import CosimInputError
from cosim.validate.gate import check_thresholds, write_thresholds
from cosim.validate.mapping import load_mapping
from cosim.validate.reference import DATA_DIR, load_energy_rows, load_measurements
from cosim.validate.runner import _apply_filter, summarize


def test_every_reference_row_is_mapped_or_listed_with_a_reason():
    ids = {r.id for r in load_measurements()}
    mapping = load_mapping()
    assert set(mapping.rows) | set(mapping.unmapped) == ids
    assert not set(mapping.rows) & set(mapping.unmapped)
    assert all(reason.strip() for reason in mapping.unmapped.values())


def test_reference_rows_carry_sources_and_positive_values():
    rows = load_measurements()
    shared = [r for r in rows if r.origin == "shared"]
    added = [r for r in rows if r.origin == "added"]
    assert len(shared) == 111  # the shared research data, copied whole
    # the other dense cells of the TensorRT-LLM v1.0 tables, Qwen3-30B-A3B's 20, 62 + 44 (gpt-oss) later cells,
    # the DeepSeek-R1 blog runs, NVIDIA's GB200 Llama 3.1 405B pretraining example and Megatron-Bridge's
    # pre-training rows (28 of its 25.11 tables, 29 of its 26.02 ones), and three MLPerf v5.1 results of NVIDIA's
    # B200 and GB200-NVL72 systems the shared data lacks; 21 MLPerf v6.0 / v6.1 results (2026) and 16 more of v6.1
    # (gpt-oss-120b on NVIDIA and AMD systems, the MI350X, Llama 3.1 8B on B300 and MI355X), and Red Hat's v5.1
    # Llama 3.1 8B run on one H100 under vLLM; since session 25 the MTP 1-5 rows of TensorRT-LLM's min-latency
    # DeepSeek-R1 blog and the B200 and H200 min-latency MTP 3 runs of its best-practice blog
    # + llm-foundry's MPT and flash-attention's GPT3 training runs (session 28), torchtitan's FSDP2 runs on 64
    # A100s (session 31); TensorRT-LLM's 2023 static-batch and first-token-latency cells (session 33: 31 + 16 mapped,
    # 10 of Falcon 180B, mapped since session 38)
    # + llm-foundry's A100 40GB table (session 33); the same TensorRT-LLM document's v0.9.0 tables (session 35:
    # 96 static-batch and 48 first-token cells, 24 of them Falcon 180B's, mapped since session 38)
    # + the same v1.0 Performance Overview's RTX PRO 6000 Blackwell cells (session 39: 40 + 6 + 10)
    # + NVIDIA's MLPerf v4.1 GH200 runs (Llama 2 70B Offline and Server, Mixtral Offline) and 700 W H200 x8 Llama 2
    # 70B Offline and Server runs (session 40)
    # + Intel's Gaudi 2 and Gaudi 3 model-performance tables (session 41: 40 static-batch and 6 first-token cells),
    # its MLPerf v4.0 Gaudi 2 Llama 2 70B Offline and Server runs, and NVIDIA NIM's closed-loop Llama 3.3 70B table
    # (8 concurrencies x TTFT, ITL and throughput, and 4 cells of its 500/2000 table)
    # + AMD's MI300X-vs-H100 latency tables (session 42: 2 models x 2 lengths x 8 batches x 2 chips) and its
    # maximum-throughput table (2 models x 4 lengths x 2 chips)
    assert len(added) == 353 + 123 + 5 + 8 + 57 + 78 + 144 + 56 + 3 + 2 + 46 + 2 + 28 + 64 + 16
    # read off AMD's latency table (Llama 3.1 70B, batch 1, 128 in / 2048 out, H100): 20,923 ms end to end
    amd = next(r for r in rows if r.id == "amd-blog-2501-llama3.1-70b-h100-tp8-b1-128-2048")
    assert amd.value == pytest.approx(1 * 2048 / 20.923 / 8, rel=1e-4) and "20923" in amd.source["locator"]
    # AMD's own H100 runs reach 0.63-0.75 of NVIDIA's published trtllm-bench rates for the same 405B TP8 cells:
    # low reliability, out of every fit
    nv = next(r for r in rows if r.id == "trtllm-perf-llama3.1-405b-h100-tp8-128-2048")
    amd_tput = next(r for r in rows if r.id == "amd-blog-2501-llama3.1-405b-h100-tp8-tput-128-2048")
    assert amd_tput.value / nv.value == pytest.approx(3265 / 4340) and amd_tput.reliability == amd.reliability == "low"
    for r in rows:
        assert r.value > 0 and (r.source.get("url") or r.source.get("locator") or r.source.get("title"))
    by_id = {r.id: r for r in rows}
    # read off perf-overview.md (Llama 3.1 8B table, row 2048/128, column H100 TP1): 3,450 tokens/s
    cell = by_id["trtllm-perf-llama3.1-8b-h100-tp1-2048-128"]
    assert cell.value == 3450 and cell.workload["input_len"] == 2048 and cell.workload["output_len"] == 128
    assert "2048/128" in cell.source["locator"] and "H100 TP1" in cell.source["locator"]
    # read off the 25.11 DGX-H100 table: Llama 3 8B, 8 GPUs, FP8-CS, 14,451 tokens/s per GPU at sequence 8192
    train = by_id["mbridge-25.11-llama3-8b-h100x8-fp8-cs"]
    assert train.value == 14451 and train.unit == "tokens/s/GPU" and train.workload["input_len"] == 8192
    assert "DGX-H100" in train.source["locator"] and "LLAMA3_8B" in train.source["locator"]
    # read off the same document's Qwen3-30B-A3B table, row 1000/2000, column B200 TP1: 22,051 tokens/s
    moe = by_id["trtllm-perf-qwen3-30b-a3b-b200-tp1-1000-2000"]
    assert moe.value == 22051 and moe.reliability == "high" and "B200 TP1 (FP4)" in moe.source["locator"]
    assert by_id["trtllm-perf-qwen3-30b-a3b-gb200-tp1-128-128"].reliability == "medium"
    # the later document reports per GPU: Llama 3.3 70B, 1000/1000, H200 TP2 (FP8): 2,587 tokens/s per GPU
    later = by_id["trtllm-perf2-llama3.3-70b-h200-tp2-1000-1000"]
    assert later.per_accelerator_value == 2587 and later.value == 2 * 2587 and later.hardware["num_accelerators"] == 2


def test_added_rows_may_not_repeat_a_shared_id(tmp_path, monkeypatch):
    import shutil

    import cosim.validate.reference as reference

    for name in ("measurements.yaml", "measurements_added.yaml"):
        shutil.copy(reference.DATA_DIR / name, tmp_path / name)
    shared_first = (tmp_path / "measurements.yaml").read_text().split("- id: ", 2)[1].split("\n", 1)[0]
    added = tmp_path / "measurements_added.yaml"
    added.write_text(added.read_text().replace("- id: trtllm-perf-llama3.3-70b-b200-tp1-128-128",
                                               f"- id: {shared_first}", 1))
    monkeypatch.setattr(reference, "DATA_DIR", tmp_path)
    reference.load_measurements.cache_clear()
    try:
        with pytest.raises(CosimInputError, match=f"'{shared_first}': duplicate id"):
            reference.load_measurements()
    finally:
        reference.load_measurements.cache_clear()


def test_energy_rows_loaded_with_ids():
    rows = load_energy_rows()
    assert len({r.id for r in rows}) == len(rows) > 100
    # MLPerf Power: J/token = system W / tokens/s (H200 v4.1 Offline: 6153 W / 25262.1 tok/s = 0.2436)
    h200 = next(r for r in rows if r.source_class == "mlperf_power" and "h200" in r.id and r.task == "Offline")
    assert h200.energy_j_per_output_token == pytest.approx(6153 / 25262.1, rel=1e-9)


def test_summary_arithmetic_by_hand():
    rows = pd.DataFrame({
        "id": ["a", "b", "c"], "predicted": [110.0, 80.0, np.nan], "measured": [100.0, 100.0, 5.0],
        "hardware": ["x", "x", "y"], "vendor": "v", "workload_class": "dense", "metric": "m",
        "source_class": "s", "reliability": "high",
    })
    rows["error"] = rows["predicted"] / rows["measured"] - 1
    summary = summarize(rows)
    x = summary[(summary.group_by == "hardware") & (summary.group == "x")].iloc[0]
    assert x["count"] == 2
    assert x["median_abs_error"] == pytest.approx(0.15)  # |+0.10| and |-0.20|
    assert x["mape"] == pytest.approx(0.15)
    assert x["worst_error"] == pytest.approx(-0.20) and x["worst_id"] == "b"
    assert "y" not in set(summary[summary.group_by == "hardware"].group)  # no prediction -> not scored


def test_a_chips_inference_rows_keep_a_group_of_their_own():
    """Rows of another metric on the same chip cannot hide a regression of its inference rows: the summary (and
    so the gate) also groups by chip and metric, from three rows up."""
    rows = pd.DataFrame({
        "id": list("abcdefg"), "measured": 100.0, "vendor": "v", "workload_class": "dense",
        "predicted": [101.0, 102.0, 103.0, 150.0, 150.0, 150.0, 150.0], "hardware": "x",
        "metric": ["offline_throughput"] * 3 + ["training_tokens_per_s_per_gpu"] * 4,
        "source_class": "s", "reliability": "high",
    })
    rows["error"] = rows["predicted"] / rows["measured"] - 1
    summary = summarize(rows)
    crossed = summary[summary.group_by == "hardware/metric"].set_index("group")
    assert crossed.loc["x/offline_throughput", "median_abs_error"] == pytest.approx(0.02)
    assert crossed.loc["x/training_tokens_per_s_per_gpu", "count"] == 4
    chip = summary[(summary.group_by == "hardware") & (summary.group == "x")].iloc[0]
    assert chip["median_abs_error"] == pytest.approx(0.50)  # the chip alone is dominated by the training rows
    assert len(summarize(rows.iloc[:5]).query("group_by == 'hardware/metric'")) == 1  # 2 training rows: none


def test_filter_expressions():
    table = pd.DataFrame({"hardware": ["h100-sxm", "b200", "h200-sxm"], "metric": ["a", "b", "a"]})
    assert list(_apply_filter(table, "hardware=b200").hardware) == ["b200"]
    assert list(_apply_filter(table, "hardware~h, metric!=b").hardware) == ["h100-sxm", "h200-sxm"]
    with pytest.raises(CosimInputError, match="unknown column 'chip'"):
        _apply_filter(table, "chip=b200")
    with pytest.raises(CosimInputError, match="not key=value"):
        _apply_filter(table, "hardware")
    # a value no row has is a typo, not an empty answer: the error names the values that exist
    with pytest.raises(CosimInputError, match="matches no row; hardware values include h100-sxm"):
        _apply_filter(table, "hardware=h100")
    with pytest.raises(CosimInputError, match="matches no row"):
        _apply_filter(table, "metric == 'a'")  # not the filter's syntax: '= 'a'' is the value looked for
    assert list(_apply_filter(table, "hardware!=tpu-v5e").hardware) == ["h100-sxm", "b200", "h200-sxm"]


def test_gate_flags_a_worsened_group(tmp_path):
    summary = pd.DataFrame([{"group_by": "metric", "group": "offline_throughput", "median_abs_error": 0.10}])
    path = tmp_path / "t.yaml"
    write_thresholds(summary, path)
    assert check_thresholds(summary, path) == []
    worse = summary.assign(median_abs_error=0.13)
    problems = check_thresholds(worse, path)
    assert len(problems) == 1 and "offline_throughput" in problems[0]


def test_band_is_the_loo_quantiles_inverted(monkeypatch):
    from cosim.validate import uncertainty

    errs = np.array([-0.2, -0.1, 0.0, 0.1, 0.3])
    monkeypatch.setattr(uncertainty, "loo_errors", lambda metric, generation=None, moe=None, trainer=None: errs)
    b = uncertainty.band("throughput_tokens_per_s", 1000.0)
    q10, q90 = np.quantile(errs, [0.1, 0.9])
    assert b["p10"] == pytest.approx(1000 / (1 + q90)) and b["p90"] == pytest.approx(1000 / (1 + q10))
    assert b["p10"] <= 1000 <= b["p90"] and b["group"] == "offline_throughput"


def test_band_uses_the_hardware_generation_when_it_has_enough_rows(monkeypatch):
    from cosim.validate import uncertainty

    wide = np.array([-0.5, -0.3, 0.0, 0.4, 0.8])  # Blackwell's record
    narrow = np.array([-0.05, -0.02, 0.0, 0.02, 0.05])  # everyone's
    monkeypatch.setattr(uncertainty, "loo_errors",
                        lambda metric, generation=None, moe=None, trainer=None: wide if generation == "nvidia-blackwell" else narrow)
    b = uncertainty.band("throughput_tokens_per_s", 1000.0, "b200")
    q10, q90 = np.quantile(wide, [0.1, 0.9])
    assert b["p10"] == pytest.approx(1000 / (1 + q90)) and b["p90"] == pytest.approx(1000 / (1 + q10))
    assert b["group"] == "offline_throughput on nvidia-blackwell" and b["n"] == 5
    # a chip of no known generation falls back on the metric group
    assert uncertainty.band("throughput_tokens_per_s", 1000.0, "groq-lpu")["group"] == "offline_throughput"


def test_band_uses_the_model_class_before_the_generation(monkeypatch):
    """A MoE estimate carries the record of MoE rows (on its generation when they are enough), a dense one
    that of dense rows; a class with too few rows falls back on the generation."""
    from cosim.validate import uncertainty

    moe_bw = np.array([0.1, 0.2, 0.25, 0.3, 0.9])  # MoE rows on Blackwell: cosim fast
    dense = np.array([-0.05, -0.02, 0.0, 0.02, 0.05])

    def fake(metric, generation=None, moe=None, trainer=None):
        if moe is True:
            return moe_bw if generation in (None, "nvidia-blackwell") else moe_bw[:2]
        return dense

    monkeypatch.setattr(uncertainty, "loo_errors", fake)
    b = uncertainty.band("throughput_tokens_per_s", 1000.0, "b200", moe=True)
    q10, q90 = np.quantile(moe_bw, [0.1, 0.9])
    assert b["p10"] == pytest.approx(1000 / (1 + q90)) and b["p90"] == pytest.approx(1000 / (1 + q10))
    assert b["group"] == "offline_throughput, MoE models, on nvidia-blackwell" and b["p90"] < 1000
    # too few MoE rows on Hopper: the class over all generations
    assert uncertainty.band("throughput_tokens_per_s", 1000.0, "h100-sxm", moe=True)["group"] == \
        "offline_throughput, MoE models"
    assert uncertainty.band("throughput_tokens_per_s", 1000.0, "h100-sxm", moe=False)["group"] == \
        "offline_throughput, dense models, on nvidia-hopper"


def test_tpot_band_takes_per_user_rows_only_for_a_single_sequence_of_their_class(monkeypatch):
    """The per-user speed rows are single-sequence MoE runs: a MoE TPOT at batch 1 carries their record (as a
    time: an error e on a rate is 1 / (1 + e) - 1 on the TPOT); a dense TPOT, or one at a larger batch, the
    throughput rows'."""
    from cosim.validate import uncertainty

    per_user = np.array([0.36, 0.37, 0.38, 0.44, 0.41, 0.28])  # cosim fast on batch-1 MoE decode
    throughput = np.array([-0.1, -0.05, 0.0, 0.05, 0.1])

    def fake(metric, generation=None, moe=None, trainer=None):
        if metric == "per_user_decode":
            return per_user if moe is True else per_user[:0]
        return throughput

    monkeypatch.setattr(uncertainty, "loo_errors", fake)
    b = uncertainty.band("tpot_s", 0.006, "b200", moe=True, batch=1)
    as_time = 1.0 / (1.0 + per_user) - 1.0
    q10, q90 = np.quantile(as_time, [0.1, 0.9])
    assert b["group"] == "per_user_decode, MoE models, on nvidia-blackwell"
    assert b["p10"] == pytest.approx(0.006 / (1 + q90)) and b["p90"] == pytest.approx(0.006 / (1 + q10))
    assert b["p10"] > 0.006  # the truth has been slower than cosim's TPOT there
    for kw in (dict(moe=False, batch=1), dict(moe=True, batch=64), dict(moe=True, batch=None)):
        assert uncertainty.band("tpot_s", 0.006, "b200", **kw)["group"].startswith("offline_throughput")


def test_energy_bands_are_judged_by_the_energy_rows_of_their_kind(monkeypatch):
    """J per token carries ML.ENERGY's per-token record; a video's joules carry the text-to-video runs' (only
    for a video estimate: an LLM step's joules are not judged by them); training has no energy record."""
    from cosim.validate import uncertainty

    seen = []
    per_token, per_video = np.array([-0.3, -0.2, -0.1, 0.0, 0.1]), np.array([-0.1, -0.05, 0.0, 0.05, 0.1])

    def fake(metric, generation=None, moe=None, trainer=None):
        seen.append(metric)
        return {"energy_per_token": per_token, "video_energy_j": per_video}.get(metric, np.zeros(0))

    monkeypatch.setattr(uncertainty, "loo_errors", fake)
    b = uncertainty.band("energy_j_per_token", 0.1, "h100-sxm", moe=False)
    q10, q90 = np.quantile(per_token, [0.1, 0.9])
    assert b["p10"] == pytest.approx(0.1 / (1 + q90)) and b["p90"] == pytest.approx(0.1 / (1 + q10))
    assert b["p90"] > 0.1  # cosim has under-counted joules per token there
    v = uncertainty.bands_for({"energy_j": 2.0e5, "seconds_per_video": 40.0}, "b200", False, phase="video")
    q10, q90 = np.quantile(per_video, [0.1, 0.9])
    assert v["energy_j"]["p10"] == pytest.approx(2.0e5 / (1 + q90))
    assert "video_energy_j" in v["energy_j"]["group"]
    assert "energy_j" not in uncertainty.bands_for({"energy_j": 5.0, "energy_j_per_token": 0.1}, "b200", False)
    assert "energy_j_per_token" not in uncertainty.bands_for({"energy_j_per_token": 0.1}, "b200", False,
                                                              phase="train")


def test_a_serving_or_video_mfu_errs_as_its_speed_does(monkeypatch):
    """MFU is FLOPs over time: a serving run's carries its throughput rows' record, a video run's the inverse
    of its time rows' record; only a training run's is judged by the training MFU rows."""
    from cosim.validate import uncertainty

    speed, times, train = (np.array([-0.2, -0.1, 0.0, 0.1, 0.2]), np.array([-0.3, -0.2, -0.1, 0.0, 0.1]),
                           np.array([-0.05, 0.0, 0.05, 0.1, 0.15]))
    table = {"offline_throughput": speed, "video_seconds": times, "training_mfu": train}
    monkeypatch.setattr(uncertainty, "loo_errors", lambda metric, generation=None, moe=None, trainer=None: table[metric])
    serving = uncertainty.band("mfu", 0.5, "h100-sxm", False, phase="decode")
    q10, q90 = np.quantile(speed, [0.1, 0.9])
    assert serving["p10"] == pytest.approx(0.5 / (1 + q90)) and serving["group"].startswith("offline_throughput")
    video = uncertainty.band("mfu", 0.5, "b200", False, phase="video")
    as_rate = 1.0 / (1.0 + times) - 1.0  # a time 30% short is a rate 1 / 0.7 - 1 = 43% high
    q10, q90 = np.quantile(as_rate, [0.1, 0.9])
    assert video["p10"] == pytest.approx(0.5 / (1 + q90)) and video["p90"] == pytest.approx(0.5 / (1 + q10))
    # cosim's times have been short (errors below 0), so its MFU has been high: the truth lies mostly below
    assert video["p10"] < 0.5 * 0.8 and video["p90"] < 0.5 * 1.1
    assert uncertainty.band("mfu", 0.5, "h100-sxm", False, phase="train")["group"].startswith("training_mfu")


def test_the_stored_errors_of_ml_energy_rows_reach_the_bands():
    """The bands draw on every scored row with a stored error, the ML.ENERGY energy and configuration rows
    among them: 90 per-token rows plus 290 vLLM runs at other max_num_seqs; 339 text-to-video runs."""
    from cosim.validate import uncertainty

    per_token = uncertainty.loo_errors("energy_per_token")
    per_video = uncertainty.loo_errors("video_energy_j")
    assert len(per_token) >= 90 + 290 - 10 and len(per_video) >= 330
    assert np.all(np.isfinite(per_token)) and np.all(np.isfinite(per_video))


def test_malformed_reference_row_exits_2_naming_row_and_field(tmp_path, capsys):
    doc = yaml.safe_load((DATA_DIR / "measurements.yaml").read_text())
    doc["records"] = doc["records"][:3]
    doc["records"][1]["value"] = -5
    bad = tmp_path / "ref.yaml"
    bad.write_text(yaml.safe_dump(doc))
    load_measurements.cache_clear()
    assert main(["validate", "--reference", str(bad), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and doc["records"][1]["id"] in err and "value" in err


@pytest.mark.slow
def test_validate_runs_the_whole_set_and_the_gate_holds(capsys):
    """The CI regression gate: every group's median |error| within its stored threshold."""
    assert main(["validate", "--format", "json", "--no-report", "--check-thresholds"]) == 0
    data = json.loads(capsys.readouterr().out)
    predicted = [r for r in data["rows"] if r["predicted"] is not None]
    assert len(predicted) >= 50
    for r in predicted:
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1, rel=1e-9)
    # every row says where it came from; the developer-added rows (table cells, blog runs, a training example) are all predicted
    assert {r["origin"] for r in data["rows"]} == {"shared", "added"}
    # (all but the one Megatron-Bridge row that trains DeepSeek-V3's MTP module, listed as unmapped; since session
    # 33 the llm-foundry run of MPT-3B at 8,192 tokens in micro-batches of 3 without checkpointing (74.3 GB) is
    # predicted: the A100 exposes 81920 MiB, not 80e9 bytes)
    # ML.ENERGY's configurations (session 29): 339 of the 340 text-to-video runs, seconds and joules per video
    # each, and 290 vLLM runs; Wan2.1-1.3B at batch 32 on one H100 "does not fit" in cosim (83 GB), though it ran
    configs = [r for r in predicted if r["source_class"] == "ml_energy_configs"]
    assert len(configs) == 2 * 339 + 290
    # torchtitan (session 31): 8 runs, 2 unmapped (checkpointing every second block), Llama 2 70B with op-level
    # selective checkpointing "does not fit" under Korthikanti's selective activations (91 GB), though it ran
    # TensorRT-LLM's 2023 tables (session 33): 31 static-batch cells and 16 first-token latencies, all predicted
    # and llm-foundry's 78 A100 40GB runs (session 33), all predicted; TensorRT-LLM's v0.9.0 tables (session 35):
    # 80 static-batch cells and 40 first-token latencies mapped, all predicted (the L40S TP groups over PCIe too);
    # Falcon 180B's cells of both (session 38): 6 + 4 and 16 + 8, all predicted; the RTX PRO 6000 Blackwell's 56
    # cells of the v1.0 Performance Overview (session 39), all predicted; the five MLPerf v4.1 GH200 and H200 runs (session 40);
    # session 41's 46 Intel Gaudi cells, 2 MLPerf v4.0 Gaudi 2 runs and 28 NIM closed-loop cells, all predicted;
    # session 42's 64 cells of AMD's MI300X-vs-H100 latency tables (static batches 1-128) and 16 of its
    # maximum-throughput table, all predicted
    added = 352 + 123 + 5 + 5 + 47 + 78 + 120 + 10 + 24 + 56 + 3 + 2 + 46 + 2 + 28 + 64 + 16 + len(configs)
    assert sum(r["origin"] == "added" for r in predicted) == added
    origin_groups = {s["group"]: s["count"] for s in data["summary"] if s["group_by"] == "origin"}
    assert origin_groups["added"] == added and origin_groups["shared"] == len(predicted) - added
    unpredicted = {r["id"]: r["note"] for r in data["rows"] if r["predicted"] is None}
    assert "llmfoundry-a100-80gb-mpt-3b-s8192-x8-mb3" not in unpredicted
    assert "does not fit" in unpredicted["torchtitan-a100-80gb-llama2-70b-s4096-x64-b1-sac-op"]
    ratios = data["hardware_ratios"]
    assert len(ratios) >= 10  # the TensorRT-LLM tables alone pair B200, H200 and H100 on four queries
    for r in ratios:
        assert r["measured_ratio"] >= 1.0 and r["faster"] != r["slower"]
        assert r["error"] == pytest.approx(r["predicted_ratio"] / r["measured_ratio"] - 1, rel=1e-9)
    # the rows beyond a worst-case bound, each with a cause; as many as the target line's group has beyond it
    bound = {t["target"]: t["target_worst_abs_error"] for t in data["targets"]}
    for m in data["misses"]:
        assert abs(m["error"]) > bound[m["target"]] and m["cause"] and m["family"]


def test_every_energy_row_is_mapped_or_listed_with_a_reason():
    from cosim.validate.mapping import energy_queries
    from cosim.validate.reference import diffusion_summary_rows

    queries, unmapped = energy_queries()
    # every per-token row, and every diffusion run's summary row (per video or image, listed, not scored)
    ids = {r.id for r in load_energy_rows()} | set(diffusion_summary_rows())
    assert set(queries) | set(unmapped) == ids and not set(queries) & set(unmapped)
    assert all(reason.strip() for reason in unmapped.values())
    # ML.ENERGY rows of catalog models on H100/B200 chat/GPQA tasks are predicted, e.g. Llama-3.1-8B
    assert any(q.workload == "llama-3.1-8b" and q.kind == "energy_per_token" for q in queries.values())


def test_target_table_scores_each_group_by_hand():
    import pandas as pd

    from cosim.validate.targets import target_table

    rows = pd.DataFrame([
        # high-reliability throughput: |errors| 0.05, 0.08, 0.40 -> median 0.08, worst +0.40 > 30%: not met
        {"metric": "offline_throughput", "reliability": "high", "source_class": "mlperf_inference", "error": 0.05,
         "fully_specified": True},
        {"metric": "offline_throughput", "reliability": "high", "source_class": "vendor_benchmark", "error": -0.08,
         "fully_specified": False, "origin": "added"},
        {"metric": "per_user_decode", "reliability": "high", "source_class": "vendor_benchmark", "error": 0.40},
        {"metric": "offline_throughput", "reliability": "medium", "source_class": "vendor_benchmark", "error": 0.9},
        # ML.ENERGY: 0.10, 0.18 -> median 0.14 <= 15%: met
        {"metric": "energy_per_token", "reliability": "high", "source_class": "ml_energy", "error": -0.10},
        {"metric": "energy_per_token", "reliability": "high", "source_class": "ml_energy", "error": 0.18},
        # video: 0.3 -> not met
        {"metric": "video_seconds", "reliability": "medium", "source_class": "video_generation", "error": -0.3},
    ])
    t = target_table(rows).set_index("target")
    hi = t.loc["high-reliability throughput"]
    assert hi["count"] == 3 and hi["cv_median_abs_error"] == pytest.approx(0.08)
    assert hi["cv_worst_error"] == pytest.approx(0.40) and not hi["met"]
    assert t.loc["ML.ENERGY energy per token", "cv_median_abs_error"] == pytest.approx(0.14)
    assert t.loc["ML.ENERGY energy per token", "met"]
    assert not t.loc["video generation time", "met"]
    info = t.loc["high-reliability throughput, fully specified queries"]
    assert info["count"] == 1 and info["cv_median_abs_error"] == pytest.approx(0.05) and info["met"] is None
    # without the developer-added row (-0.08): |errors| 0.05, 0.40 -> median 0.225
    shared = t.loc["high-reliability throughput, shared reference rows only"]
    assert shared["count"] == 2 and shared["cv_median_abs_error"] == pytest.approx(0.225)


def test_joint_fit_jacobian_moves_only_each_parameters_rows():
    from cosim.validate.fit import PARAMS, JointModel, generation_of
    from cosim.validate.runner import base_table, query_for

    ids = ["trtllm-perf-llama3.1-8b-h100-tp1-128-128", "mlperf-v4.1-h100x8-llama2-offline"]
    table = base_table(ids=ids)
    table["generation"] = [generation_of(h) for h in table["hardware"]]
    table["stack"] = [query_for(i).stack for i in table["id"]]
    model = JointModel(table)
    assert model.gens == ["nvidia-hopper"] and model.stacks == ["trtllm-bench"]
    # 5 Hopper scales, one stack factor, the kernel time (the MoE shares are stage two's)
    assert model.n_theta == len(PARAMS) + 2
    theta = np.zeros(model.n_theta)
    # at first principles (every scale 1) an H100 running FP8 GEMMs flat out draws more than its TDP, and a
    # power-capped run's time is set by its energy, not by kernel efficiency: take the Jacobian at fitted-like
    # GEMM and memory scales (0.7), where the run is not capped
    theta[:2] = np.log(0.7)
    jac = model.jacobian(theta)
    n = len(table)
    assert jac.shape == (n + model.n_theta, model.n_theta)
    stack_col = len(PARAMS)
    trt = int(np.flatnonzero(table["stack"].to_numpy() == "trtllm-bench")[0])
    assert jac[1 - trt, stack_col] == 0.0 and jac[trt, stack_col] > 0  # a faster stack raises predictions
    assert (jac[:n, -1] < 0).all()  # a longer time per kernel slows every row
    assert np.allclose(np.diag(jac[n:]), 1.0 / model.sigma)  # the prior rows


def test_stack_factor_per_generation_moves_only_that_generations_rows():
    from cosim.engines.calibration import scale_for
    from cosim.validate.fit import PARAMS, JointModel, fit_stack_key, generation_of
    from cosim.validate.runner import base_table, query_for

    # lookup rule: the generation's own factor, else the stack's, else 1 for the tuned reference
    scales = {"trtllm-bench": 0.9, "trtllm-bench@nvidia-blackwell": 0.7}
    assert scale_for(scales, "trtllm-bench", "nvidia-blackwell") == 0.7
    assert scale_for(scales, "trtllm-bench", "nvidia-hopper") == 0.9
    assert scale_for(scales, "tuned", "nvidia-blackwell") == 1.0 and scale_for(scales, "vllm", None) == 1.0
    # a stack's MoE factor applies to MoE models only, before any generation factor
    scales |= {"vllm": 0.8, "vllm@moe": 0.5}
    assert scale_for(scales, "vllm", "nvidia-hopper", moe=True) == 0.5
    assert scale_for(scales, "vllm", "nvidia-hopper", moe=False) == 0.8
    assert scale_for(scales, "trtllm-bench", "nvidia-blackwell", moe=True) == 0.7
    # the PyTorch backend under another harness runs trtllm-bench's kernels and takes its factors
    assert scale_for(scales, "trtllm-pytorch", "nvidia-blackwell") == 0.7
    assert scale_for(scales, "trtllm-pytorch", "nvidia-hopper") == 0.9
    assert fit_stack_key("trtllm-bench", "nvidia-blackwell") == "trtllm-bench@nvidia-blackwell"
    assert fit_stack_key("trtllm-bench", "nvidia-hopper") == "trtllm-bench"
    assert fit_stack_key("vllm", "nvidia-blackwell") == "vllm"
    from cosim.validate.fit import energy_stack_key

    assert energy_stack_key(query_for("mlenergy-qwen-qwen3-30b-a3b-instruct-2507-lm-arena-chat-h100x1-batch8")) == "vllm@moe"
    assert energy_stack_key(query_for("mlenergy-meta-llama-llama-3.1-8b-instruct-lm-arena-chat-h100x1-batch8")) == "vllm"

    ids = ["trtllm-perf-llama3.1-8b-h100-tp1-128-128", "trtllm-perf-llama3.3-70b-b200-tp1-128-2048"]
    table = base_table(ids=ids)
    table["generation"] = [generation_of(h) for h in table["hardware"]]
    table["stack"] = [fit_stack_key(query_for(i).stack, g) for i, g in zip(table["id"], table["generation"], strict=True)]
    model = JointModel(table)
    assert model.stacks == ["trtllm-bench", "trtllm-bench@nvidia-blackwell"]
    assert model.n_theta == 2 * len(PARAMS) + 2 + 1  # and the kernel time every chip shares
    theta = np.zeros(model.n_theta)
    for g in range(2):  # below the TDP cap (see test_joint_fit_jacobian_moves_only_each_parameters_rows)
        theta[g * len(PARAMS):g * len(PARAMS) + 2] = np.log(0.7)
    jac = model.jacobian(theta)
    hopper = int(np.flatnonzero(table["generation"].to_numpy() == "nvidia-hopper")[0])
    col_h, col_b = 2 * len(PARAMS), 2 * len(PARAMS) + 1
    assert jac[hopper, col_h] > 0 and jac[hopper, col_b] == 0.0
    assert jac[1 - hopper, col_b] > 0 and jac[1 - hopper, col_h] == 0.0


def test_ml_energy_speed_is_scored_only_where_max_num_seqs_set_the_batch():
    # Llama-3.1-405B on 8 B200 at max_num_seqs 4096: 4096 sequences of ~370 + 185 tokens need
    # 4096 x 555 x 516 KB (126 layers x 8 KV heads x 128 x 2 x 2 B) = 1.17 TB of KV, more than the ~0.57 TB
    # left within 90% of 8 x 192 GB after 810 GB of weights, so the KV cache sets the batch and the row's
    # speed is not scored;
    # at max_num_seqs 8 the batch is the row's and its speed is.
    from cosim.validate.fit import _ml_energy_predictions
    from cosim.validate.runner import base_table

    ids = ["mlenergy-meta-llama-llama-3.1-405b-instruct-lm-arena-chat-b200x8-maxbatch",
           "mlenergy-meta-llama-llama-3.1-405b-instruct-lm-arena-chat-b200x8-batch8"]
    sub = base_table(ids=ids).set_index("id").loc[ids].reset_index()
    energy, speed = _ml_energy_predictions(sub, {}, {}, (1.0, 1.0))
    assert np.all(np.isfinite(energy)) and np.all(energy > 0)
    assert np.isnan(speed[0]) and np.isfinite(speed[1]) and speed[1] > 0


def test_unknown_output_dataset_of_a_profile_is_an_error_naming_it(tmp_path):
    import yaml

    from cosim.validate.mapping import MAPPING_PATH, load_mapping

    data = yaml.safe_load(MAPPING_PATH.read_text())
    data["profiles"]["mlperf-llama2-openorca"]["output_dataset"] = "no-such-dataset"
    p = tmp_path / "mapping.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(CosimInputError, match="mlperf-llama2-openorca.*no-such-dataset"):
        load_mapping(str(p))


def test_uncalibrated_report_goes_to_its_own_folder(tmp_path, capsys):
    """A first-principles run must not overwrite the calibrated report that reports/ keeps."""
    assert main(["validate", "--uncalibrated", "--format", "json", "--report-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calibrated"] is False
    assert not (tmp_path / "validation.md").exists()
    text = (tmp_path / "uncalibrated" / "validation.md").read_text()
    assert "uncalibrated, first-principles defaults" in text
    assert "## Hardware ratios" in text


def test_mlenergy_queries_follow_the_vllm_server_settings():
    """ML.ENERGY's vLLM configs leave kv-cache-dtype unset ('auto' keeps the model dtype, bf16, under FP8
    weights) and run the MoE models expert-parallel; dense and bf16 rows keep the defaults."""
    from cosim.engines.memory import footprint
    from cosim.specs.loader import load_workload
    from cosim.validate.predict import _scenario
    from cosim.validate.runner import query_for

    fp8_moe = query_for("mlenergy-qwen-qwen3-235b-a22b-instruct-2507-fp8-lm-arena-chat-h100x8-batch8")
    assert (fp8_moe.precision, fp8_moe.kv_precision, fp8_moe.tp, fp8_moe.ep) == ("fp8", "bf16", 8, 8)
    bf16_moe = query_for("mlenergy-qwen-qwen3-30b-a3b-instruct-2507-lm-arena-chat-h100x2-batch8")
    assert (bf16_moe.kv_precision, bf16_moe.tp, bf16_moe.ep) == (None, 2, 2)
    dense = query_for("mlenergy-meta-llama-llama-3.1-8b-instruct-lm-arena-chat-h100x1-batch8")
    assert (dense.kv_precision, dense.ep) == (None, 1)
    sc = _scenario(fp8_moe, "generate", 1, 1000, 1000)
    assert sc.kv_precision == "bf16" and sc.weight_precision == "fp8"
    # Qwen3-235B-A22B: 94 layers x 4 KV heads x 128 x 2 (K, V) x 2 bytes per token; 4 KV heads over TP8
    # leave one (replicated) head per GPU: 94 x 1 x 128 x 2 x 2 bytes x 2,000 tokens per chip
    kv = footprint(load_workload("qwen3-235b-a22b"), sc).kv_cache
    assert abs(kv - 94 * 128 * 2 * 2 * 2000) / kv < 0.01


def test_offline_replica_spans_its_attention_dp_ranks():
    """With attention data parallelism (dp ranks sharing the experts, ep over dp) one model replica is
    tp x dp chips: 8 chips at tp 1, dp 2, ep 2 are 4 replicas of 2 chips, each running twice the sequence
    cap of one rank."""
    from cosim.validate.mapping import Query
    from cosim.validate.predict import _offline

    q = Query(kind="offline_throughput", hardware="h100-sxm", chips=8, workload="qwen3-30b-a3b", precision="fp8",
              tp=1, dp=2, ep=2, input_len=256, output_len=256, num_requests=64, max_seqs=16)
    res, replicas = _offline(q, load_mapping(), None)
    assert replicas == 4 and res.feasible and res.batch == 32


def test_a_stated_batch_holds_per_pipeline_micro_batch():
    """TensorRT-LLM keeps pp micro-batches of up to max_batch_size in flight (maxNumSequences = pp x
    maxBatchSize); trtllm-bench's default cap is already the total."""
    from cosim.validate.mapping import Query
    from cosim.validate.predict import DEFAULT_MAX_SEQS, engine_sequence_cap

    base = dict(kind="offline_throughput", hardware="b200", chips=8, workload="llama-3.1-405b", precision="fp4",
                input_len=1000, output_len=1000)
    assert engine_sequence_cap(Query(**base, tp=2, pp=2, max_seqs=128)) == 256
    assert engine_sequence_cap(Query(**base, tp=4, max_seqs=128)) == 128
    assert engine_sequence_cap(Query(**base, tp=2, pp=2)) == DEFAULT_MAX_SEQS


def test_a_stated_kv_cache_fraction_sizes_the_tensorrt_llm_pool():
    """The KV pool is the stated fraction of the memory left after the weights: 0.95 holds 0.95 / 0.90 the
    sequences of the tuned default (to within one sequence of rounding)."""
    from cosim.validate.mapping import Query
    from cosim.validate.predict import _scenario, _trtllm_batch

    q = dict(kind="offline_throughput", hardware="h200-sxm", chips=1, workload="llama-2-70b", precision="fp8",
             tp=1, input_len=400, output_len=300)
    sc = _scenario(Query(**q), "generate", 1, 400, 300)
    default = _trtllm_batch(Query(**q), sc)
    stated = _trtllm_batch(Query(**q, kv_cache_fraction=0.95), sc)
    assert default > 100 and abs(stated - default * 0.95 / 0.90) <= 1.0


def test_moe_shares_fit_recovers_known_shares_and_scores_each_row_without_it(monkeypatch):
    """Stage two on two MoE rows whose 'measurements' are cosim's own predictions at a compute share of 0.6 and
    a memory share of 0.7 (flat priors; GEMM and memory scales 0.7, below the TDP cap, where kernel efficiency
    sets the time): at these settings each row answers to one share only, so the fit recovers both shares and
    fits both rows; left out, a row leaves no data on its share, which returns to the prior's 1, so its
    leave-one-out error is prediction(its share at 1) / measured - 1."""
    import cosim.validate.fit as fit
    from cosim.validate.runner import base_table

    monkeypatch.setattr(fit, "GROUPED_PRIOR_SIGMA", 1e6)
    table = base_table(ids=["mlperf-v5.0-h200x8-mixtral-offline", "trtllm-perf2-gpt-oss-120b-gb200-tp1-1024-32768"])
    table["generation"] = ["nvidia-hopper" if "h200" in i else "nvidia-blackwell" for i in table["id"]]
    table["stack"] = "tuned"
    scales = {g: np.log([0.7, 0.7, 1.0, 1.0, 1.0]) for g in ("nvidia-hopper", "nvidia-blackwell")}
    truth = fit._predict(table, scales, {}, (0.6, 0.7))
    compute_at_1 = fit._predict(table, scales, {}, (1.0, 0.7))  # the compute share back at 1
    memory_at_1 = fit._predict(table, scales, {}, (0.6, 1.0))  # the memory share back at 1
    c = int(np.argmax(compute_at_1 / truth))  # the row that answers to the compute share
    m = 1 - c
    assert compute_at_1[c] > 1.1 * truth[c] and compute_at_1[m] == pytest.approx(truth[m], rel=1e-9)
    # (the compute-bound row's grouped GEMMs store their outputs at the grouped memory bandwidth after their
    # main loops, so the memory share moves it by that store's few percent of its time)
    assert memory_at_1[m] > 1.1 * truth[m] and memory_at_1[c] == pytest.approx(truth[c], rel=0.03)
    table["measured"] = truth
    shares, in_sample, loo = fit.fit_moe_share(table, scales, {}, verbose=False)
    assert abs(shares[0] - 0.6) < 0.01 and abs(shares[1] - 0.7) < 0.01
    assert np.all(np.abs(in_sample) < 0.01)
    assert loo[c] == pytest.approx(compute_at_1[c] / truth[c] - 1.0, rel=0.02)
    # left out, the memory-bound row's share is pinned only weakly by the other row's output stores: its error
    # falls short of the share-at-1 figure, but not by much
    assert 0.75 * (memory_at_1[m] / truth[m] - 1.0) < loo[m] <= memory_at_1[m] / truth[m] - 1.0 + 1e-9


def test_rows_served_on_vllm_are_held_out_and_priced_with_its_factor(capsys):
    """vLLM's factor is fitted last, on the ML.ENERGY rows: a throughput row served on vLLM fits nothing and
    its stored error is the out-of-sample one at that factor, the error `cosim validate` reports."""
    from cosim.engines.calibration import CALIBRATION_PATH
    from cosim.validate.runner import base_table, query_for

    cal = yaml.safe_load(CALIBRATION_PATH.read_text())
    table = base_table()
    perf = table[~table["metric"].isin(["energy_per_token", "system_energy_per_token"])
                 & table["reliability"].isin(["high", "medium"])]
    on_vllm = {rid for rid in perf["id"] if query_for(rid).stack == "vllm"}
    assert {"mlperf-v6.1-mangoboost-mi300x-x8-gpt-oss-120b-offline",
            "mlperf-v5.1-redhat-h100x1-llama3.1-8b-offline"} <= on_vllm
    assert "vllm" in cal["held_out"]["stacks"] and on_vllm <= set(cal["held_out"]["rows"])
    fitted = {rid for fam in cal["families"].values() for rid in fam.get("rows", [])} | set(cal["moe"]["rows"])
    assert not fitted & on_vllm
    assert main(["validate", "--format", "json", "--no-report", "--filter", "id~redhat-h100x1"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["error"] == pytest.approx(cal["loo_errors"][row["id"]], abs=1e-3)


def test_moe_rows_fit_only_the_moe_shares():
    """MoE rows never set a generation's scales: the stored calibration fits the chips on dense rows and lists
    every MoE performance row (the TensorRT-LLM MoE table cells among them) under the MoE shares, each
    with a leave-one-out error to be scored by."""
    from cosim.engines.calibration import CALIBRATION_PATH
    from cosim.validate.runner import base_table, query_for

    cal = yaml.safe_load(CALIBRATION_PATH.read_text())
    prefixes = ("trtllm-perf-qwen3-", "trtllm-perf2-qwen3-", "trtllm-perf2-deepseek-r1-", "trtllm-perf2-gpt-oss-",
                "trtllm-dsr1-maxtput-", "trtllm-perf-llama4-scout-", "trtllm-perf2-llama4-maverick-")
    cells = [r.id for r in load_measurements() if r.id.startswith(prefixes)]
    # Qwen3-30B-A3B (v1.0, later), Qwen3-235B-A22B, DeepSeek-R1, gpt-oss, DeepSeek-R1 blog max-throughput runs,
    # Llama 4 Scout (v1.0, one GPU), Llama 4 Maverick (later, DEP4/DEP8), Qwen3-30B-A3B on one RTX PRO 6000
    assert len(cells) == 20 + 12 + 19 + 14 + 44 + 3 + 20 + 17 + 10
    table = base_table()
    moe = table[(table["workload_class"] == "moe") & table["reliability"].isin(["high", "medium"])
                & ~table["metric"].isin(["energy_per_token", "system_energy_per_token", "server_throughput"])]
    # a row served on vLLM is held out: vLLM's factor is fitted afterwards, on the ML.ENERGY rows
    on_vllm = {rid for rid in moe["id"] if query_for(rid).stack == "vllm"}
    assert on_vllm == {"mlperf-v6.1-mangoboost-mi300x-x8-gpt-oss-120b-offline"}
    assert on_vllm <= set(cal["held_out"]["rows"])
    # so is a speculative-decoding row: it tests the draft / verify step out of sample
    speculative = {rid for rid in moe["id"] if query_for(rid).draft_tokens}
    assert len(speculative) == 7 and speculative <= set(cal["held_out"]["rows"])
    # and so are the static batches and first-token latencies of TensorRT-LLM's v0.9.0 tables (Mixtral 8x7B,
    # session 35), as every row of those metrics
    static = set(moe.loc[moe["metric"].isin(["static_batch_tokens_per_s_per_gpu", "first_token_latency_s"]), "id"])
    assert len(static) == 16 + 8 and static <= set(cal["held_out"]["rows"])
    moe_rows = set(cal["moe"]["rows"])
    held = on_vllm | speculative | static
    assert set(moe["id"]) - held <= moe_rows and set(cells) <= moe_rows and not held & moe_rows
    fitted = {rid for fam in cal["families"].values() for rid in fam.get("rows", [])}
    assert not fitted & moe_rows
    assert 0.0 < cal["moe"]["grouped_gemm_scale"] <= 1.0 and 0.0 < cal["moe"]["grouped_gemm_memory_scale"] <= 1.0
    assert all(np.isfinite(cal["loo_errors"][rid]) for rid in moe_rows)
    # leave one model out: every MoE model once, its rows adding up to the MoE rows, each share a share
    by_model = cal["moe"]["leave_one_model_out"]
    assert set(by_model) == set(table.loc[table["id"].isin(moe_rows), "workload"])
    assert sum(v["rows"] for v in by_model.values()) == len(moe_rows)
    assert all(0.0 < v["share_without"] <= 1.0 and 0.0 < v["memory_share_without"] <= 1.0
               and v["median_abs_error"] >= 0.0 for v in by_model.values())


def test_gpt_oss_cells_map_to_the_kernels_trtllm_runs():
    """gpt-oss keeps MXFP4 experts beside BF16 attention; TensorRT-LLM runs the experts W4A8 (MXFP4 x MXFP8)
    on Blackwell and W4A16 on Hopper. The B200 DEP2 cell: 2 ranks, FP4 expert weights with FP8 activations,
    BF16 elsewhere, an FP8 cache; per GPU 25,943 tokens/s as published, so 51,886 for the instance."""
    from cosim.validate.runner import query_for

    by_id = {r.id: r for r in load_measurements()}
    q = query_for("trtllm-perf2-gpt-oss-120b-b200-dep2-1000-1000")
    assert (q.workload, q.chips, q.tp, q.dp, q.ep) == ("gpt-oss-120b", 2, 1, 2, 2)
    assert (q.precision, q.activation_precision, q.dense_precision, q.kv_precision) == ("fp4", "fp8", "bf16", "fp8")
    assert by_id["trtllm-perf2-gpt-oss-120b-b200-dep2-1000-1000"].value == 25943 * 2
    h = query_for("trtllm-perf2-gpt-oss-20b-h200-tp1-1024-1024")
    assert (h.precision, h.activation_precision, h.dense_precision, h.kv_precision) == ("fp4", "bf16", "bf16", "bf16")


def test_deepseek_blog_runs_carry_their_stated_engine_limits():
    """NVIDIA's DeepSeek-R1 best-performance blog states every limit of its max-throughput runs, per attention-DP
    rank: the H200 run at 128 sequences and 1,151 tokens per rank with 0.8 of the free memory for a BF16 KV cache,
    11,489.2671 output tokens/s in all (1,436.1584 per GPU); none of them falls back to trtllm-bench's own
    heuristic."""
    from cosim.validate.mapping import load_mapping
    from cosim.validate.predict import trtllm_bench_cap
    from cosim.validate.runner import query_for

    by_id = {r.id: r for r in load_measurements()}
    h = query_for("trtllm-dsr1-maxtput-h200x8")
    assert (h.hardware, h.chips, h.tp, h.dp, h.ep, h.precision, h.kv_precision) == ("h200-sxm", 8, 1, 8, 8, "fp8", "bf16")
    assert (h.max_seqs, h.max_num_tokens, h.kv_cache_fraction, h.num_requests) == (128, 1151, 0.8, 5120)
    assert by_id["trtllm-dsr1-maxtput-h200x8"].value == pytest.approx(8 * 1436.1584, rel=1e-6)
    b = query_for("trtllm-dsr1-maxtput-b200x8-fp8kv")
    assert (b.max_seqs, b.max_num_tokens, b.kv_precision, b.assumed is not None) == (896, 2048, "fp8", True)
    mapping = load_mapping()
    assert all(trtllm_bench_cap(query_for(i), mapping) is None
               for i in ("trtllm-dsr1-maxtput-h200x8", "trtllm-dsr1-maxtput-b200x8-fp8kv", "trtllm-dsr1-maxtput-b200x8-bf16kv"))


def test_pytorch_backend_harness_keeps_the_kv_in_use_and_waits_for_the_host():
    """A `trtllm-pytorch` row (NVIDIA's MLPerf DeepSeek-R1 harness on TensorRT-LLM's PyTorch backend, scheduler
    max_util) admits by the KV in use, as the tuned MLPerf harness does, not by whole requests as trtllm-bench's
    guaranteed-no-evict runs do; and its prompt steps run without CUDA graphs, as trtllm-bench's do."""
    from cosim.validate.mapping import load_mapping
    from cosim.validate.predict import _scenario, _trtllm_batch, lengths
    from cosim.validate.runner import query_for

    q = query_for("mlperf-v5.1-b200x8-deepseek-r1-offline")
    assert q.stack == "trtllm-pytorch"
    inp, out = lengths(q, load_mapping())
    sc = _scenario(q, "generate", q.dp, inp, out)
    assert sc.eager_prompt_steps and sc.chunked_prefill
    by_stack = {st: _trtllm_batch(q.model_copy(update={"stack": st}), sc) for st in ("trtllm-pytorch", "tuned",
                                                                                     "trtllm-bench")}
    assert by_stack["trtllm-pytorch"] == by_stack["tuned"]  # same KV fraction (the row's 0.9), KV in use
    # whole requests hold ISL + OSL of KV against ISL + OSL / 2 in use (MLA's cache is linear in tokens)
    assert by_stack["trtllm-bench"] / by_stack["trtllm-pytorch"] == pytest.approx((inp + out / 2) / (inp + out),
                                                                                  rel=0.01)
