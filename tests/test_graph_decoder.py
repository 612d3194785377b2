"""Decoder-LM op graphs against closed forms derived by hand, sharding conservation, and bad mappings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_specs import DEEPSEEK_V3, LLAMA_8B, LLAMA_70B, load

from cosim.cli.main import main
from cosim.graph import OpKind, build_graph, decode_graph, pipeline_stages, prefill_graph, train_graph
from cosim.graph.optable import Stage
from cosim.specs.scenario import Parallelism, Scenario
from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total

BF16 = 2.0


def scen(phase, batch=1, input_len=1024, tp=1, pp=1, ep=1, dp=1, sp=1, sp_kind="ulysses", **kw) -> Scenario:
    par = Parallelism(tp=tp, pp=pp, ep=ep, dp=dp, sp=sp, sp_kind=sp_kind)
    return Scenario(phase=phase, batch=batch, input_len=input_len, parallelism=par, **kw)


def matmul_flops(table) -> float:
    """FLOPs of GEMMs and attention cores only (elementwise ops are the small remainder)."""
    mask = np.isin(table.kind, [int(OpKind.GEMM), int(OpKind.GROUPED_GEMM), int(OpKind.ATTENTION)])
    return float(np.sum(table.flops[mask] * table.repeat[mask]))


def named(table, prefix: str, column: str = "flops") -> float:
    mask = np.array([n.startswith(prefix) for n in table.name])
    return float(np.sum(getattr(table, column)[mask] * table.repeat[mask]))


@pytest.mark.parametrize("spec", [LLAMA_8B, LLAMA_70B])
@pytest.mark.parametrize(("batch", "context"), [(1, 1024), (16, 4096)])
def test_decode_flops_closed_form(spec, batch, context):
    """decode FLOPs = batch x (2 x active params without the input embedding + 4 L ctx H d).

    The input embedding is a lookup (no FLOPs). The remaining terms: the new token also attends to
    itself (context + 1 keys), and norms/activation/rotary add ~10 FLOPs per hidden element per layer,
    together under 0.1% here. Matmul FLOPs alone match (context + 1) exactly.
    """
    model = load(spec)
    att, L, h = model.attention, model.num_layers, model.hidden_size
    weights = params_total(model) - model.vocab_size * h - (2 * L + 1) * h  # minus input table and norm gains
    table = decode_graph(model, scen("decode", batch=batch), context)
    approx = batch * (2 * weights + 4 * L * context * att.num_heads * att.head_dim)
    assert table.total("flops") == pytest.approx(approx, rel=1e-3)
    exact = batch * (2 * weights + 4 * L * (context + 1) * att.num_heads * att.head_dim)
    assert matmul_flops(table) == pytest.approx(exact, rel=1e-12)


def test_decode_kv_bytes():
    """Written per step: batch x 2 L kv_heads d bytes; read: batch x context x that."""
    model = load(LLAMA_70B)
    per_token = 2 * 80 * 8 * 128 * BF16
    assert per_token == kv_cache_bytes_per_token(model, BF16)
    t = decode_graph(model, scen("decode", batch=8), 3000)
    assert t.total("bytes_kv_write") == pytest.approx(8 * per_token, rel=1e-12)
    assert t.total("bytes_kv_read") == pytest.approx(8 * 3000 * per_token, rel=1e-12)
    t8 = decode_graph(model, scen("decode", batch=8, tp=8), 3000)  # 8 KV heads over 8 chips: one each
    assert t8.total("bytes_kv_read") == pytest.approx(8 * 3000 * per_token / 8, rel=1e-12)


@pytest.mark.parametrize("tp", [1, 8])
def test_decode_kv_read_once_per_query_head_without_a_gqa_kernel(tp):
    """A masked multi-head attention kernel without GQA sharing (TensorRT-LLM before XQA) reads each KV head's
    cache once per query head: 64 / 8 = 8 times the bytes of a GQA kernel's shared read; what it writes and the
    other rows do not change. Per chip under TP the ratio is the chip's query heads over its KV heads (8 / 1)."""
    model = load(LLAMA_70B)
    per_token = 2 * 80 * 8 * 128 * BF16
    shared = decode_graph(model, scen("decode", batch=8, tp=tp), 3000)
    reread = decode_graph(model, scen("decode", batch=8, tp=tp, kv_read_per_query_head=True), 3000)
    assert reread.total("bytes_kv_read") == pytest.approx(8 * 3000 * per_token / tp * 8, rel=1e-12)
    assert reread.total("bytes_kv_read") == pytest.approx(8 * shared.total("bytes_kv_read"), rel=1e-12)
    assert reread.total("bytes_kv_write") == shared.total("bytes_kv_write")
    assert reread.total("bytes_weight") == shared.total("bytes_weight")
    prompt = prefill_graph(model, scen("prefill", batch=8, tp=tp, kv_read_per_query_head=True))
    assert prompt.total("bytes_kv_read") == 0.0  # a prompt's attention reads no cache


def test_kv_read_per_query_head_on_the_windowed_layers_only():
    """Llama 4 Maverick (40 query heads, 8 KV heads of 128, 36 of its 48 layers chunked at 8,192 tokens) with the
    masked multi-head read on its windowed layers only, as TensorRT-LLM ran it on Hopper: those layers read
    their chunk's cache 40 / 8 = 5 times, the 12 global layers once; at a context of 3,000 tokens, inside the
    first chunk, a step of 8 sequences reads 8 x 3000 x (36 x 5 + 12) x 2 x 8 x 128 x 2 bytes."""
    from cosim.specs.loader import load_workload

    model = load_workload("llama-4-maverick-17b-128e")
    kw = {"kv_read_per_query_head": True}
    windowed = decode_graph(model, scen("decode", batch=8, kv_read_per_query_head_layers="windowed", **kw), 3000)
    every = decode_graph(model, scen("decode", batch=8, **kw), 3000)
    shared = decode_graph(model, scen("decode", batch=8), 3000)
    per_layer = 8 * 3000 * 2 * 8 * 128 * BF16
    assert windowed.total("bytes_kv_read") == pytest.approx(per_layer * (36 * 5 + 12), rel=1e-12)
    assert every.total("bytes_kv_read") == pytest.approx(per_layer * 48 * 5, rel=1e-12)
    assert shared.total("bytes_kv_read") == pytest.approx(per_layer * 48, rel=1e-12)
    # past the first chunks a chunked layer reads its current chunk's tokens only (20,000 - 2 x 8,192 = 3,616),
    # the global layers all 20,000
    far = decode_graph(model, scen("decode", batch=8, kv_read_per_query_head_layers="windowed", **kw), 20000)
    assert far.total("bytes_kv_read") == pytest.approx(8 * (3616 * 36 * 5 + 20000 * 12) * 2 * 8 * 128 * BF16,
                                                       rel=1e-12)


def test_estimate_rejects_an_unknown_kv_read_layer_set(capsys):
    code = main(["estimate", "--hardware", "h200-sxm", "--workload", "llama-4-maverick-17b-128e", "--chips", "8",
                 "--tp", "8", "--phase", "decode", "--kv-read-per-query-head", "--kv-read-per-query-head-layers",
                 "some"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--kv-read-per-query-head-layers" in err[0]


def test_estimate_flag_kv_read_per_query_head(capsys):
    """`estimate --kv-read-per-query-head`: a GQA model's decode step gets slower (more bytes read), a
    multi-head model's (one query head per KV head) does not change."""
    import json

    def tpot(workload, *flag):
        assert main(["estimate", "--hardware", "h100-sxm", "--workload", workload, "--phase", "decode", "--batch",
                     "64", "--input-len", "2048", "--precision", "fp8", "--format", "json", *flag]) == 0
        return json.loads(capsys.readouterr().out)["tpot_s"]

    assert tpot("mistral-7b", "--kv-read-per-query-head") > 1.5 * tpot("mistral-7b")
    assert tpot("llama-2-7b", "--kv-read-per-query-head") == pytest.approx(tpot("llama-2-7b"), rel=1e-12)


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_decode_weight_bytes_per_chip(tp):
    """Weights read per chip per step = (params - input embedding table) x bytes / tp, within 0.5%."""
    model = load(LLAMA_70B)
    t = decode_graph(model, scen("decode", tp=tp), 1024)
    expected = (params_total(model) - model.vocab_size * model.hidden_size) * BF16 / tp
    assert t.total("bytes_weight") == pytest.approx(expected, rel=0.005)


def test_prefill_flops_closed_form():
    """2 x params x tokens for the layers, the LM head on the last position only, and the exact
    causal attention term 4 L H d b s (s + 1) / 2."""
    model = load(LLAMA_8B)
    b, s = 2, 2048
    L, h, V, H, d = 32, 4096, 128256, 32, 128
    head = V * h
    layers = params_total(model) - 2 * head - (2 * L + 1) * h
    t = prefill_graph(model, scen("prefill", batch=b, input_len=s))
    attention = 4 * L * H * d * b * s * (s + 1) / 2
    assert matmul_flops(t) == pytest.approx(2 * layers * b * s + 2 * head * b + attention, rel=1e-12)
    assert t.total("flops") == pytest.approx(2 * layers * b * s + 2 * head * b + attention, rel=2e-3)


def test_train_has_head_everywhere_and_one_gradient_allreduce():
    model = load(LLAMA_8B)
    t = train_graph(model, scen("train", batch=4, input_len=512, dp=2))
    head = t.select(t.stage == int(Stage.LM_HEAD))
    assert head.m[0] == 2 * 512  # batch / dp x seq positions
    opt = t.select(t.stage == int(Stage.OPTIMIZER))
    assert len(opt) == 1 and opt.comm_group[0] == 2
    # gradient bytes = every weight on the chip x 2 bytes (bf16)
    assert opt.comm_bytes[0] == pytest.approx(params_total(model) * BF16, rel=1e-9)


REPLICATED = ("attn_norm", "mlp_norm", "final_norm", "embed_tokens", "moe.router", "moe.combine", "mla.q_down",
              "mla.q_norm", "mla.kv_down", "mla.kv_norm")


@pytest.mark.parametrize(("spec", "tp"), [(LLAMA_70B, 8), (LLAMA_8B, 4), (DEEPSEEK_V3, 8)])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_tp_conserves_flops(spec, tp, phase):
    """FLOPs x tp = unsharded FLOPs + (tp - 1) x the ops every chip repeats (norms, router, MoE combine, MLA
    downs)."""
    model = load(spec)
    one = build_graph(model, scen(phase, batch=4, input_len=256))
    sharded = build_graph(model, scen(phase, batch=4, input_len=256, tp=tp))
    replicated = sum(named(one, n) for n in REPLICATED)
    if model.attention.kind == "mla":  # rotary of the one shared rope key (of heads + 1 rotated vectors)
        replicated += named(one, "mla.rotary") / (model.attention.num_heads + 1)
    assert sharded.total("flops") * tp == pytest.approx(one.total("flops") + (tp - 1) * replicated, rel=1e-9)


@pytest.mark.parametrize("pp", [2, 3, 7])
def test_pp_stages_sum_to_the_model(pp):
    model = load(LLAMA_70B)
    for phase in ("prefill", "decode"):
        whole = build_graph(model, scen(phase, batch=2, input_len=128))
        stages = pipeline_stages(model, scen(phase, batch=2, input_len=128, pp=pp))
        assert len(stages) == pp
        for col in ("flops", "bytes_weight", "bytes_kv_read", "bytes_kv_write"):
            assert sum(s.total(col) for s in stages) == pytest.approx(whole.total(col), rel=1e-12)
        # the busiest stage is what build_graph returns
        busiest = build_graph(model, scen(phase, batch=2, input_len=128, pp=pp))
        assert busiest.total("flops") == max(s.total("flops") for s in stages)


@pytest.mark.parametrize("sp_kind", ["ulysses", "ring"])
def test_sp_splits_prefill_flops(sp_kind):
    model = load(LLAMA_8B)
    one = prefill_graph(model, scen("prefill", input_len=4096))
    four = prefill_graph(model, scen("prefill", input_len=4096, sp=4, sp_kind=sp_kind))
    lm_head = named(one, "lm_head")  # last position only: on one chip, not split
    assert four.total("flops") * 4 == pytest.approx(one.total("flops") + 3 * lm_head, rel=1e-9)
    assert four.total("comm_bytes") > 0


def test_deepseek_mla_kv_cache_is_the_latent():
    model = load(DEEPSEEK_V3)
    t = decode_graph(model, scen("decode", batch=2), 1000)
    per_token = 61 * (512 + 64) * BF16
    assert per_token == kv_cache_bytes_per_token(model, BF16)
    assert t.total("bytes_kv_read") == pytest.approx(2 * 1000 * per_token, rel=1e-12)
    assert t.total("bytes_kv_write") == pytest.approx(2 * per_token, rel=1e-12)


def test_deepseek_decode_flops_per_token():
    """2 x activated params (DeepSeek's convention: no input embedding; "37B") + the absorbed MLA term
    2 L H (ctx + 1) (d_latent + d_rope + d_latent)."""
    model = load(DEEPSEEK_V3)
    ctx = 2048
    t = decode_graph(model, scen("decode", batch=1), ctx)
    active = params_active(model, include_input_embedding=False)
    norms = (2 * 61 + 1) * 7168 + 61 * (1536 + 512)  # RMSNorm gains: multiplied elementwise, not matmul
    attention = 2 * 61 * 128 * (ctx + 1) * (576 + 512)
    assert matmul_flops(t) == pytest.approx(2 * (active - norms) + attention, rel=1e-9)
    assert t.total("flops") == pytest.approx(2 * 37e9 + attention, rel=0.02)


@given(tp=st.sampled_from([1, 2, 4, 8]), batch=st.integers(1, 64), context=st.integers(0, 20000))
@settings(max_examples=30, deadline=None)
def test_decode_invariants(tp, batch, context):
    """Weights per chip do not depend on batch or context; KV bytes grow linearly in both."""
    model = load(LLAMA_8B)
    t = decode_graph(model, scen("decode", batch=batch, tp=tp), context)
    ref = decode_graph(model, scen("decode", batch=1, tp=tp), 0)
    assert t.total("bytes_weight") - ref.total("bytes_weight") == pytest.approx(
        (batch - 1) * 4096 * BF16, abs=1.0)  # only the embedding rows looked up grow with the batch
    per_token_chip = 2 * 32 * max(1, 8 // tp) * 128 * BF16
    assert t.total("bytes_kv_read") == pytest.approx(batch * context * per_token_chip, rel=1e-12)
    assert (t.flops >= 0).all() and (t.repeat > 0).all()


def test_generate_is_prefill_plus_one_decode_step():
    model = load(LLAMA_8B)
    sc = Scenario(phase="generate", batch=2, input_len=1000, output_len=200)
    t = build_graph(model, sc)
    pre = prefill_graph(model, sc)
    dec = decode_graph(model, sc, 1000 + 100)
    assert t.total("flops") == pytest.approx(pre.total("flops") + dec.total("flops"), rel=1e-12)
    assert all(n.startswith(("prefill/", "decode/")) for n in t.name)


@pytest.mark.parametrize(("args", "field"), [
    (["--tp", "3"], "parallelism.tp"),
    (["--pp", "64"], "parallelism.pp"),
    (["--ep", "2"], "parallelism.ep"),  # a dense model has no experts
    (["--batch", "3", "--dp", "2"], "parallelism.dp"),
    (["--sp", "3", "--tp", "2", "--phase", "prefill"], "parallelism.sp"),
    (["--phase", "video"], "phase"),
])
def test_invalid_mapping_exits_2_with_one_line(capsys, args, field):
    argv = ["graph", "--workload", "llama-3.1-8b", "--phase", "decode", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and field in err


def test_cli_json_totals_match_the_table(capsys):
    import json

    assert main(["graph", "--workload", "llama-3.1-8b", "--phase", "decode", "--batch", "4", "--context", "512",
                 "--tp", "2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    flops = sum(op["flops"] * op["repeat"] for op in data["ops"])
    assert data["totals"]["flops"] == pytest.approx(flops)
    assert {"flops", "bytes_weight", "bytes_act", "bytes_kv_read", "bytes_kv_write", "comm_bytes"} <= set(data["totals"])
    attn = next(op for op in data["ops"] if op["kind"] == "attention")
    assert attn["kv_len"] == 513 and attn["heads"] == 16 and attn["kv_heads"] == 4


def test_cli_table_and_csv(capsys):
    assert main(["graph", "--workload", "llama-3.1-8b", "--phase", "prefill", "--input-len", "64"]) == 0
    assert "lm_head" in capsys.readouterr().out
    assert main(["graph", "--workload", "llama-3.1-8b", "--phase", "train", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("name,") and "dp_grad_allreduce" in out


def test_mixed_step_flops_closed_form():
    """A chunked-prefill step: 64 sequences decode at context 2000 while 64 x 1024 / 256 = 256 prompt tokens
    ride along. Layer GEMMs run over 320 tokens, the LM head over the 64 decoding ones, decode attention over
    2001 keys for each of the 64, and 1 / 256 of the batch's causal prompt attention 4 L H d b s (s + 1) / 2."""
    from cosim.graph.build import mixed_step_graph

    model = load(LLAMA_8B)
    L, h, V, H, d = 32, 4096, 128256, 32, 128
    b, s, out, ctx = 64, 1024, 256, 2000
    head = V * h
    layers = params_total(model) - 2 * head - (2 * L + 1) * h
    sc = Scenario(phase="generate", batch=b, input_len=s, output_len=out, chunked_prefill=True)
    assert sc.prompt_tokens_per_step == 256
    t = mixed_step_graph(model, sc, ctx)
    decode_attention = 4 * L * H * d * (ctx + 1) * b
    prompt_attention = 4 * L * H * d * b * s * (s + 1) / 2 / out
    expected = 2 * layers * (b + 256) + 2 * head * b + decode_attention + prompt_attention
    assert matmul_flops(t) == pytest.approx(expected, rel=1e-12)
    # weights are read once per step, as in a decode step, plus the embedding rows the 256 prompt tokens look up;
    # the KV written is the decoding tokens' plus the chunk's
    decode_weights = decode_graph(model, sc, ctx).total("bytes_weight")
    assert t.total("bytes_weight") == pytest.approx(decode_weights + 256 * h * BF16, rel=1e-12)
    per_token = kv_cache_bytes_per_token(model, BF16)
    assert t.total("bytes_kv_write") == pytest.approx((b + 256) * per_token, rel=1e-9)
