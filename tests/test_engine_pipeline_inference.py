"""Pipeline parallelism in inference: decode steps run as pp micro-batches that keep every stage busy."""

import pytest

from cosim.cli.common import build_scenario
from cosim.engines.estimate import estimate
from cosim.engines.phases import pipeline_micro_batch


def _decode(batch: int, tp: int, pp: int):
    sc = build_scenario(phase="decode", batch=batch, input_len=256, output_len=1, precision="fp8", tp=tp, pp=pp)
    return estimate("h100-sxm", "llama-3.1-70b", sc, chips=8)


def test_micro_batch_splits_the_running_batch_per_data_parallel_rank():
    sc = build_scenario(phase="decode", batch=30, input_len=256, output_len=1, tp=1, pp=4, dp=2)
    assert pipeline_micro_batch(sc).batch == 8  # 15 sequences per rank -> ceil(15 / 4) = 4 per micro-batch
    one = build_scenario(phase="decode", batch=30, input_len=256, output_len=1, tp=1, pp=1, dp=2)
    assert pipeline_micro_batch(one) is one


@pytest.mark.parametrize("batch", [64, 2048])
def test_micro_batched_pipeline_matches_the_same_chips_as_replicas(batch):
    """Per chip, TP4 x PP2 on batch B does what a TP4 replica does on B/2: each stage runs half the layers
    on two micro-batches of B/2 per iteration, and the replica runs all layers once on B/2. So the two
    mappings of 8 chips reach the same decode throughput (up to the stage hand-off), memory-bound (64) or
    compute-bound (2048). Without micro-batching a stage idles while the other works: half, when
    compute-bound."""
    piped = _decode(batch, tp=4, pp=2)
    replicas = _decode(batch // 2, tp=4, pp=1)  # 8 chips = 2 replicas of TP4
    assert piped.throughput_tokens_per_s == pytest.approx(replicas.throughput_tokens_per_s, rel=0.08)


def test_a_sequence_waits_for_every_micro_batch_of_its_iteration():
    """TPOT of a micro-batched pipeline is pp stage steps of one micro-batch: two steps over half the layers
    on 64 sequences take as long as one TP4 step over all the layers on 64 (up to the stage hand-off)."""
    piped = _decode(128, tp=4, pp=2)
    replica = _decode(64, tp=4, pp=1)
    assert piped.tpot_s == pytest.approx(replica.tpot_s, rel=0.08)


@pytest.mark.parametrize(("pp", "dp"), [(2, 1), (4, 2)])
def test_a_pipelined_iteration_waits_for_its_hosts_work_on_every_sequence(pp, dp):
    """With `pipeline_host_per_sequence_s` = h, each iteration of a pipelined run lasts h x (sequences per
    attention-DP rank) longer: every stage's executor handles all of its rank's sequences. Without a pipeline
    the engine overlaps that work with the GPU's (the time is not charged)."""
    from cosim.engines.efficiency import params_for
    from cosim.specs.loader import load_hardware

    h, batch = 40e-6, 512
    base = params_for(load_hardware("h100-sxm"))
    for stages, want in ((pp, h * batch / dp), (1, 0.0)):
        sc = build_scenario(phase="decode", batch=batch, input_len=256, output_len=1, precision="fp8", tp=1,
                            pp=stages, dp=dp)
        chips = stages * dp
        plain = estimate("h100-sxm", "llama-3.1-8b", sc, chips=chips, params=base)
        waits = estimate("h100-sxm", "llama-3.1-8b", sc, chips=chips,
                         params=base.with_overrides(pipeline_host_per_sequence_s=h))
        assert waits.tpot_s - plain.tpot_s == pytest.approx(want, abs=1e-9)


def test_the_serving_step_table_charges_the_same_pipeline_wait():
    """The serving simulator's decode step table adds the same h x sequences per rank to a pipelined step."""
    from cosim.engines.efficiency import params_for
    from cosim.engines.steptime import step_time_table
    from cosim.specs.loader import load_hardware

    h = 40e-6
    base = params_for(load_hardware("h100-sxm"))
    sc = build_scenario(phase="decode", batch=1, input_len=256, output_len=1, precision="fp8", tp=1, pp=2)
    plain = step_time_table("h100-sxm", "llama-3.1-8b", sc, [64, 256], [512], "decode", params=base)
    waits = step_time_table("h100-sxm", "llama-3.1-8b", sc, [64, 256], [512], "decode",
                            params=base.with_overrides(pipeline_host_per_sequence_s=h))
    assert (waits - plain)[:, 0] == pytest.approx([h * 64, h * 256], abs=1e-12)
