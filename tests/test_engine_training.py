"""Training memory and time with ZeRO stages, micro-batches and recompute: hand-derived closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosim.cli.common import build_scenario
from cosim.cli.main import main
from cosim.engines.hwarrays import HardwareArrays
from cosim.engines.memory import footprint
from cosim.engines.phases import zero3_table
from cosim.engines.vectorized import evaluate_points
from cosim.graph.build import train_graph
from cosim.graph.optable import CommKind, OpKind, Stage
from cosim.specs.loader import load_hardware, load_workload
from cosim.workloads.params import params_total

WL = load_workload("llama-3.1-8b")
P8B = params_total(WL)
H, L, HEADS = 4096, 32, 32  # Llama-3.1-8B hidden size, layers, heads


def _train(**kw):
    base = {"phase": "train", "batch": 256, "input_len": 8192, "dp": 256}
    base.update(kw)
    return build_scenario(**base)


def test_zero3_state_per_chip_llama_8b_on_256_chips():
    assert abs(P8B / 8.03e9 - 1) < 0.01  # published parameter count
    fp = footprint(WL, _train(zero=3, recompute="full"))
    gather = 3 * 2 * P8B / L  # FSDP: the computing + the prefetched layer + one layer of full gradients
    assert fp.weights + fp.optimizer == pytest.approx((2 + 2 + 12) * P8B / 256 + gather, rel=1e-12)
    assert fp.optimizer == pytest.approx((2 + 12) * P8B / 256, rel=1e-12)


@pytest.mark.parametrize("zero,expected", [
    (0, lambda p, d: 16 * p),
    (1, lambda p, d: 2 * p + 2 * p + 12 * p / d),
    (2, lambda p, d: 2 * p + (2 + 12) * p / d),
])
def test_zero_stages_partition_the_adam_state(zero, expected):
    # TP2 x DP8: each chip holds half the parameters; ZeRO Sec. 5.1: Pos 4P + 12P/Nd, Pos+g 2P + 14P/Nd
    sc = build_scenario(phase="train", batch=16, input_len=2048, tp=2, dp=8, zero=zero)
    fp = footprint(WL, sc)
    assert fp.weights + fp.optimizer == pytest.approx(expected(P8B / 2, 8), rel=1e-12)


def test_sgd_keeps_one_fp32_state():
    sc = build_scenario(phase="train", batch=8, input_len=1024, dp=8, zero=1)
    fp = footprint(WL, sc.model_copy(update={"optimizer": "sgd"}))
    assert fp.weights + fp.optimizer == pytest.approx(4 * P8B + 8 * P8B / 8, rel=1e-12)


def test_activations_korthikanti_with_micro_batches():
    s = 2048
    # pp = 1, 4 sequences per replica in micro-batches of 2 (gradient accumulation): one micro-batch live
    sc = build_scenario(phase="train", batch=16, input_len=s, tp=2, dp=4, microbatch=2)
    assert footprint(WL, sc).activations == pytest.approx(34 * s * 2 * H / 2 * L, rel=1e-12)
    # no micro-batch given and pp = 1: the whole local batch at once
    sc = build_scenario(phase="train", batch=16, input_len=s, tp=2, dp=4)
    assert footprint(WL, sc).activations == pytest.approx(34 * s * 4 * H / 2 * L, rel=1e-12)
    # pp = 4, 8 micro-batches of one sequence: 1F1B keeps pp = 4 in flight on the first stage (L/4 layers)
    sc = build_scenario(phase="train", batch=32, input_len=s, tp=2, pp=4, dp=4)
    assert footprint(WL, sc).activations == pytest.approx(34 * s * H / 2 * (L / 4) * 4, rel=1e-12)
    # only 2 micro-batches per replica: at most 2 in flight
    sc = build_scenario(phase="train", batch=8, input_len=s, tp=2, pp=4, dp=4)
    assert footprint(WL, sc).activations == pytest.approx(34 * s * H / 2 * (L / 4) * 2, rel=1e-12)
    # no recompute: FlashAttention stores no s x s scores (Korthikanti's 5 a s / h term is an unfused attention's),
    # only an FP32 log-sum-exp per head and query, so the layer holds 34 s b h + 4 a s b bytes
    sc = build_scenario(phase="train", batch=4, input_len=s, dp=4, recompute="none")
    assert footprint(WL, sc).activations == pytest.approx((34 * H + 4 * HEADS) * s * L, rel=1e-12)
    # full recompute: 2 s b h per layer, plus one layer recomputed with its selective working set
    sc = build_scenario(phase="train", batch=8, input_len=s, tp=2, pp=4, dp=4, recompute="full")
    assert footprint(WL, sc).activations == pytest.approx(2 * s * H * (L / 4) * 2 + 34 * s * H / 2, rel=1e-12)


def test_pipeline_bubble_follows_the_number_of_micro_batches():
    hw = HardwareArrays.from_hardware(load_hardware("h100-sxm"))
    sc = build_scenario(phase="train", batch=16, input_len=1024, tp=2, pp=4, dp=2, microbatch=1)
    many = evaluate_points(hw, WL, sc)["latency_s"][0]
    one = evaluate_points(hw, WL, sc.model_copy(update={
        "parallelism": sc.parallelism.model_copy(update={"microbatch": 8})}))["latency_s"][0]
    # 8 micro-batches: (8 + 3) / 8; one micro-batch of all 8 sequences: (1 + 3) / 1
    assert one / many == pytest.approx(4.0 / (11.0 / 8.0), rel=1e-12)


def test_zero3_replaces_the_all_reduce_by_reduce_scatter_and_two_all_gathers():
    sc = build_scenario(phase="train", batch=64, input_len=1024, tp=2, dp=32, zero=3)
    table = train_graph(WL, sc)
    dp_rows = (table.kind == int(OpKind.COMM)) & (table.stage == int(Stage.OPTIMIZER))
    grad = float(table.comm_bytes[dp_rows].sum())
    z3 = zero3_table(table, sc, gathers=2.0)
    opt = z3.stage == int(Stage.OPTIMIZER)
    rs = opt & (z3.comm_kind == int(CommKind.REDUCE_SCATTER))
    ag = opt & (z3.comm_kind == int(CommKind.ALL_GATHER))
    assert not np.any(opt & (z3.comm_kind == int(CommKind.ALL_REDUCE)))
    assert grad == pytest.approx(2 * P8B / 2, rel=1e-3)  # bf16 gradients of the chip's half of the model
    assert float(z3.comm_bytes[rs].sum()) == grad  # bf16 gradients, reduce-scattered
    assert float(z3.comm_bytes[ag].sum()) * 32 == pytest.approx(grad, rel=1e-12)  # bf16 weight shards gathered
    assert float(z3.repeat[ag].sum()) == 2.0  # before forward and before backward
    assert zero3_table(table, sc.model_copy(update={"parallelism": sc.parallelism.model_copy(
        update={"zero": 2})}), gathers=2.0) is table


def test_zero3_moves_one_and_a_half_times_the_dp_bytes():
    # 8 chips, pure DP, on a switch without in-switch reduction: ring all-reduce sends 2(p-1)/p S,
    # reduce-scatter + 2 all-gathers send 3(p-1)/p S (Rajbhandari et al. Sec. 7.2.2)
    hw = HardwareArrays.from_hardware(load_hardware("h100-sxm"))
    hw = hw.with_column("scale_up_in_switch_reduction", np.zeros(1))
    sc = build_scenario(phase="train", batch=8, input_len=1024, dp=8, recompute="selective")
    sent = {}
    for z in (0, 3):
        s = sc.model_copy(update={"parallelism": sc.parallelism.model_copy(update={"zero": z})})
        r = evaluate_points(hw, WL, s)
        sent[z] = r["comm_bytes_scale_up"][0] + r["comm_bytes_scale_out"][0]
    assert sent[3] / sent[0] == pytest.approx(1.5, rel=1e-9)


def test_sharded_optimizer_step_reads_only_the_shard():
    hw = HardwareArrays.from_hardware(load_hardware("h100-sxm"))
    sc = build_scenario(phase="train", batch=8, input_len=1024, dp=8)
    hbm = {}
    for z in (0, 1):
        s = sc.model_copy(update={"parallelism": sc.parallelism.model_copy(update={"zero": z})})
        hbm[z] = evaluate_points(hw, WL, s)["bytes_main_memory"][0]
    # Adam step: 30 B per parameter of memory traffic, on 1/dp of the parameters under ZeRO >= 1
    assert hbm[0] - hbm[1] == pytest.approx(30 * P8B * (1 - 1 / 8), rel=1e-9)


def test_llama3_405b_reference_row_is_feasible_and_reports_mfu(capsys):
    args = ["estimate", "--phase", "train", "--workload", "llama-3.1-405b", "--hardware", "h100-sxm",
            "--chips", "16384", "--tp", "8", "--pp", "16", "--dp", "128", "--zero", "1", "--batch", "2048",
            "--input-len", "8192", "--format", "json"]
    assert main(args) == 0
    out = capsys.readouterr()
    d = json.loads(out.out)
    assert d["feasible"] is True
    assert 0.05 < d["mfu"] < 0.75  # 3 x forward FLOPs over (step x peak): a fraction, below the GEMM ceiling
    assert "recompute: full" in out.err  # selective recompute (Korthikanti: 34 s b h / t) does not fit 80 GB
    # explicitly selective: the same mapping does not fit, a result with the numbers
    assert main(args[:-2] + ["--recompute", "selective", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is False and "does not fit" in d["reason"] and "activations" in d["reason"]


def test_maxtext_fsdp_row_on_tpu_v6e_is_feasible(capsys):
    assert main(["estimate", "--phase", "train", "--hardware", "tpu-v6e", "--chips", "256", "--dp", "256",
                 "--zero", "3", "--workload", "llama-3.1-8b", "--batch", "256", "--input-len", "8192",
                 "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is True and 0.05 < d["mfu"] < 0.85


@pytest.mark.parametrize("flag,value", [("--zero", "4"), ("--microbatch", "0"), ("--recompute", "some")])
def test_bad_training_flags_exit_two_with_one_line(capsys, flag, value):
    code = main(["estimate", "--phase", "train", "--hardware", "h100-sxm", "--workload", "llama-3.1-8b",
                 flag, value])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and flag in err
