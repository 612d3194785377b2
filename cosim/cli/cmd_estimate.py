"""`cosim estimate`: latency, throughput, MFU/MBU and the bottleneck of one workload on one chip spec."""

from __future__ import annotations

import math
import sys

import typer

from cosim.cli.common import (
    ActivationPrecisionOpt,
    AttentionPrecisionOpt,
    BatchOpt,
    DensePrecisionOpt,
    DpOpt,
    EpOpt,
    Fp4FormatOpt,
    FramesOpt,
    HardwareOpt,
    HeightOpt,
    InputLenOpt,
    KvPrecisionOpt,
    KvReadLayersOpt,
    KvReadPerQueryHeadOpt,
    MicrobatchOpt,
    OutputLenOpt,
    PhaseOpt,
    PpOpt,
    PrecisionOpt,
    RecomputeOpt,
    SpKindOpt,
    SpOpt,
    SpRingOpt,
    SsmStatePrecisionOpt,
    StepsOpt,
    TpOpt,
    VppOpt,
    WidthOpt,
    WorkloadOpt,
    ZeroOpt,
    chip_fp4_format,
)


def _with_image_tokens(workload: str, scenario):
    """The scenario with the prompt's image tokens added to its text `input_len` (the engine's input_len counts
    every prompt token); a clear error for a model without an image encoder."""
    from cosim.specs.loader import load_workload
    from cosim.workloads.params import image_tokens

    model = load_workload(workload)
    if not hasattr(model, "vision"):  # a video model: its phase check gives the error
        return scenario
    extra = image_tokens(model, scenario.images_per_request)
    return scenario.model_copy(update={"input_len": scenario.input_len + extra})


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        hardware: HardwareOpt,
        workload: WorkloadOpt,
        phase: PhaseOpt = "decode",
        chips: int | None = typer.Option(None, "--chips", help="total chips (a multiple of tp x pp x sp x dp)"),
        batch: BatchOpt = "1",
        input_len: InputLenOpt = 1024,
        output_len: OutputLenOpt = 128,
        output_len_cv: float = typer.Option(0.0, "--output-len-cv", help="generate: coefficient of variation "
                                            "of the requests' output lengths; a running batch is length-biased, "
                                            "so decode contexts reach input_len + output_len x (1 + CV²)"),
        chunked_prefill: bool = typer.Option(False, "--chunked-prefill", help="generate: prompt chunks ride on "
                                             "the decode steps (continuous batching with chunked prefill, as "
                                             "TensorRT-LLM and vLLM schedule) instead of one prefill of the batch"),
        dp_balance: bool = typer.Option(False, "--dp-balance", help="generate, MoE with --dp > 1 (attention data "
                                        "parallelism): the ranks take their prompts together (TensorRT-LLM's "
                                        "attention_dp_config enable_balance), so a step does not wait for the one "
                                        "rank that got the most prompts"),
        dp_imbalance: float = typer.Option(1.0, "--dp-imbalance", help="generate, MoE with --dp > 1: every step "
                                           "lasts this many times its balanced time, as the busiest attention-DP "
                                           "rank keeps the others waiting (1: ranks in step; 1.11 measured for "
                                           "TensorRT-LLM's balanced ADP over variable-length requests)"),
        cuda_graph_sizes: str = typer.Option("", "--cuda-graph-sizes", help="decode, generate: comma-separated "
                                             "per-rank batch sizes the engine captured CUDA graphs "
                                             "for (TensorRT-LLM cuda_graph_config batch_sizes with enable_padding); "
                                             "a step without a prompt pads its batch up to the next one"),
        images_per_request: int = typer.Option(0, "--images-per-request", help="prefill, generate: images each "
                                               "prompt carries, for a model with an image encoder (Gemma 3); "
                                               "their tokens (images x the encoder's tokens per image) are added "
                                               "to --input-len, which counts the text"),
        draft_tokens: int = typer.Option(0, "--draft-tokens", help="decode, generate: speculative decoding with the "
                                         "model's multi-token-prediction module "
                                         "(DeepSeek-V3/R1): tokens drafted per sequence per step, which the main "
                                         "model verifies in one pass"),
        accepted_tokens_per_step: float | None = typer.Option(
            None, "--accepted-tokens-per-step", help="with --draft-tokens: mean tokens a sequence emits per "
            "step (accepted drafts + 1; TensorRT-LLM's 'acceptance rate'), between 1 and draft tokens + 1"),
        kv_read_per_query_head: KvReadPerQueryHeadOpt = False,
        kv_read_per_query_head_layers: KvReadLayersOpt = "all",
        frames: FramesOpt = None,
        height: HeightOpt = None,
        width: WidthOpt = None,
        steps: StepsOpt = None,
        precision: PrecisionOpt = "bf16",
        kv_precision: KvPrecisionOpt = None,
        ssm_state_precision: SsmStatePrecisionOpt = None,
        activation_precision: ActivationPrecisionOpt = None,
        dense_precision: DensePrecisionOpt = None,
        fp4_format: Fp4FormatOpt = None,
        attention_precision: AttentionPrecisionOpt = None,
        tp: TpOpt = 1,
        pp: PpOpt = 1,
        ep: EpOpt = 1,
        dp: DpOpt = 1,
        sp: SpOpt = 1,
        sp_kind: SpKindOpt = "ulysses",
        sp_ring: SpRingOpt = None,
        zero: ZeroOpt = 0,
        microbatch: MicrobatchOpt = None,
        vpp: VppOpt = 1,
        recompute: RecomputeOpt = "auto",
        mode: str = typer.Option("analytical", "--mode", help="analytical | cycle"),
        mapping: str = typer.Option("manual", "--mapping", help="manual (the flags above) | auto (pick tp, pp, "
                                    "ep, batch and precision that maximise tokens/s per chip under the SLO)"),
        slo_ttft: float | None = typer.Option(None, "--slo-ttft", help="TTFT limit in s for --mapping auto"),
        slo_tpot: float | None = typer.Option(None, "--slo-tpot", help="TPOT limit in s for --mapping auto"),
        with_uncertainty: bool = typer.Option(False, "--with-uncertainty", help="add P10/P90 bands from the "
                                              "cross-validated errors of cosim validate for this kind of output "
                                              "(throughput, TPOT, seconds per video, MFU, joules)"),
        stack: str = typer.Option("tuned", "--stack", help="serving software whose kernel efficiency, as fitted "
                                  "on cosim validate's rows, to use: tuned (MLPerf-class engines, the default) | "
                                  "trtllm-bench (also: its prompt-carrying steps run without CUDA graphs, so with "
                                  "--chunked-prefill an MoE model's steps wait for the host) | trtllm-pytorch "
                                  "(the same backend and factor under another harness) | vllm "
                                  "(also: its fitted GPU time per running sequence per step) | pytorch (--phase "
                                  "train only: eager PyTorch trainers, FSDP/DDP without Megatron-Core's fused "
                                  "kernels: the factor fitted on llm-foundry, torchtitan and flash-attention "
                                  "training runs); see reports/validation.md"),
        moe_host_ms: float | None = typer.Option(None, "--moe-host-ms", help="train, MoE: host time in ms a step "
                                                 "waits per MoE layer per micro-batch (default: the time cosim "
                                                 "validate fitted for Megatron-Core on Hopper and Blackwell, 0 "
                                                 "elsewhere; 0 for a stack whose MoE path never syncs with the host)"),
        attention_kernel: str | None = typer.Option(None, "--attention-kernel", help="the fused attention "
                                                    "kernel the stack runs, where it pins one: flash-attention-2 "
                                                    "(Diffusers/xDiT; on a B200 it runs at its measured 355 "
                                                    "TFLOP/s, not at Blackwell's attention fraction; on H100, "
                                                    "H200 and H800 at 346); chips without a figure keep their own"),
        fmt: str = typer.Option("table", "--format", help="table | json"),
    ) -> None:
        """Estimate latency, throughput, MFU/MBU, memory per chip and the bottleneck.

        --batch is the global batch in sequences (requests or videos), split over the --dp replicas.

        Train: --batch sequences per optimizer step; each DP replica runs batch / dp of them.

        Train: a DP replica's sequences run in micro-batches of --microbatch; pipeline bubble
        (m + (pp - 1) / vpp) / m (--vpp 1: 1F1B; > 1: the interleaved schedule).

        --chips beyond tp x pp x sp x dp adds copies of the whole mapping, which multiply the throughput.
        """
        from cosim.cli.common import RECOMPUTE_CHOICES, build_scenario, parse_batch
        from cosim.cli.output import check_format, print_json, print_key_values, print_table
        from cosim.engines.estimate import estimate
        from cosim.errors import CosimInputError

        check_format(fmt, ("table", "json"))
        if recompute not in RECOMPUTE_CHOICES:
            raise CosimInputError(f"--recompute must be one of {', '.join(RECOMPUTE_CHOICES)}, got '{recompute}'")
        b = parse_batch(batch)
        if not output_len_cv >= 0.0:
            raise CosimInputError(f"--output-len-cv must be >= 0, got {output_len_cv}")
        if moe_host_ms is not None and not (moe_host_ms >= 0.0 and math.isfinite(moe_host_ms)):
            raise CosimInputError(f"--moe-host-ms must be a finite time >= 0 ms, got {moe_host_ms}")
        if moe_host_ms is not None and mapping == "auto":
            raise CosimInputError("--moe-host-ms applies to a manual mapping: --mapping auto ranks mappings at the "
                                  "calibrated host time")
        scenario = build_scenario(phase=phase, batch=b or dp, input_len=input_len, output_len=output_len,
                                  output_len_cv=output_len_cv, chunked_prefill=chunked_prefill, frames=frames,
                                  height=height, width=width, steps=steps, precision=precision, tp=tp, pp=pp,
                                  ep=ep, dp=dp, sp=sp, sp_kind=sp_kind, sp_ring=sp_ring, zero=zero, microbatch=microbatch, vpp=vpp,
                                  recompute="selective" if recompute == "auto" else recompute,
                                  kv_precision=kv_precision, activation_precision=activation_precision,
                                  dense_precision=dense_precision, dp_prompt_balance=dp_balance,
                                  fp4_format=chip_fp4_format(fp4_format, hardware),
                                  dp_imbalance=dp_imbalance, ssm_state_precision=ssm_state_precision,
                                  images_per_request=images_per_request, draft_tokens=draft_tokens,
                                  accepted_tokens_per_step=accepted_tokens_per_step,
                                  kv_read_per_query_head=kv_read_per_query_head,
                                  kv_read_per_query_head_layers=kv_read_per_query_head_layers,
                                  attention_precision=attention_precision)
        if images_per_request:
            scenario = _with_image_tokens(workload, scenario)
        if cuda_graph_sizes:
            from cosim.cli.common import parse_graph_sizes

            scenario = scenario.model_copy(update={"cuda_graph_batch_sizes": parse_graph_sizes(cuda_graph_sizes)})
        if recompute == "auto" and phase == "train" and b is not None:
            scenario = _auto_recompute(hardware, workload, scenario)
        chosen = None
        if mapping not in ("manual", "auto"):
            raise CosimInputError(f"--mapping must be manual or auto, got '{mapping}'")
        if mapping == "auto":
            scenario, chosen, b = _auto_mapping(hardware, workload, scenario, slo_ttft, slo_tpot)
        from cosim.cli.common import stack_run
        from cosim.engines.calibration import is_moe
        from cosim.specs.loader import load_hardware, load_workload

        hw, model = load_hardware(hardware), load_workload(workload)
        moe = is_moe(model)
        scenario, params = stack_run(hw, model, scenario, stack)
        if moe_host_ms is not None:
            from cosim.engines.efficiency import params_for

            params = (params or params_for(hw)).with_overrides(moe_train_layer_overhead_s=moe_host_ms / 1e3)
        if attention_kernel:
            from cosim.engines.efficiency import params_for, with_attention_kernel

            params = with_attention_kernel(params or params_for(hw), hw, attention_kernel)
        result = estimate(hardware, workload, scenario, chips=chips, mode=mode, batch_max=b is None, params=params)
        _note_context_beyond_training(model, scenario)
        out = result.to_dict()
        if chosen is not None:
            out["mapping"] = chosen
        if with_uncertainty:
            from cosim.validate.uncertainty import bands_for

            out["uncertainty"] = bands_for(out, hardware=hw.name, moe=moe, phase=phase, stack=stack)
        if fmt == "json":
            print_json(out)
            return
        print_key_values(out, title=f"cosim estimate: {phase} ({mode})")
        if chosen is not None:
            print_key_values(chosen, title="--mapping auto chose")
        if with_uncertainty:
            rows = {f"{k} P10..P90": (f"{v['p10']:.4g} .. {v['p90']:.4g} (from {v['n']} validated rows, {v['group']})"
                                      if v
                                      else "no validated rows of this kind") for k, v in out["uncertainty"].items()}
            print_key_values(rows, title="uncertainty (cross-validated)")
        if mode == "cycle" and result.feasible:
            from cosim.engines.compare_modes import analytical_vs_cycle

            cmp = analytical_vs_cycle(hardware, workload, scenario, chips=chips)
            if len(cmp):
                print_table(cmp[["graph", "name", "kind", "time_s_analytical", "time_s_cycle", "cycle_over_analytical",
                                 "folds_or_waves", "utilization", "reason"]],
                            title="analytical vs cycle engine per op (time x repeat) and why they differ")
        if len(result.breakdown):
            frame = result.breakdown.sort_values("time_s", ascending=False)
            cols = ["graph", "name", "kind", "bound", "repeat", "time_s", "share", "achieved_flops_per_s",
                    "achieved_bytes_per_s"]
            print_table(frame[cols], title="per-op breakdown (per chip per step, time x repeat)")


def _note_context_beyond_training(model, scenario) -> None:
    """A stated limit on stderr: the run's longest context beyond the model's max_position_embeddings (the
    estimate prices the work; whether the model holds up at that length is not cosim's to say)."""
    limit = getattr(model, "max_position_embeddings", None)
    if not limit or scenario.phase == "video":
        return
    # decode: the cached context plus the new token; generate: the prompt and every output; else the prompt
    longest = {"decode": scenario.input_len + 1,
               "generate": scenario.input_len + scenario.output_len}.get(scenario.phase, scenario.input_len)
    if longest > limit:
        print(f"note: a context of {longest:,} tokens exceeds {model.name}'s max_position_embeddings ({limit:,}); "
              "the estimate prices the work, the model was not trained for that length", file=sys.stderr)


def _auto_mapping(hardware, workload, scenario, slo_ttft, slo_tpot):
    """(scenario with the best mapping, the mapping chosen, batch) via cosim.explore.mapping.best_mapping."""
    from cosim.errors import CosimInputError
    from cosim.explore.engine import _apply
    from cosim.explore.mapping import best_mapping
    from cosim.specs.loader import load_hardware, load_workload

    slo = {}
    for key, value, flag in (("ttft_s", slo_ttft, "--slo-ttft"), ("tpot_s", slo_tpot, "--slo-tpot")):
        if value is not None:
            if value <= 0:
                raise CosimInputError(f"{flag} must be > 0 s, got {value}")
            slo[key] = value
    hw, wl = load_hardware(hardware), load_workload(workload)
    best = best_mapping(hw, wl, scenario, slo or None)
    if not best["feasible"]:
        raise CosimInputError(f"--mapping auto found no mapping that fits and meets the SLO: {best['reason']}")
    m = best["mapping"]
    return _apply(scenario, m), dict(m), m["batch"]


def _auto_recompute(hardware, workload, scenario):
    """`--recompute auto`: selective recompute when it fits in the usable memory, else full recompute
    (the cheapest policy that fits, as trainers are configured). The choice is logged on stderr."""
    import sys

    from cosim.engines.efficiency import params_for
    from cosim.engines.memory import footprint, usable_bytes
    from cosim.specs.loader import load_hardware, load_workload

    hw = load_hardware(hardware)
    wl = load_workload(workload)
    if wl.family == "video_dit":
        return scenario
    usable = usable_bytes(hw.main_memory.capacity_bytes.value, params_for(hw).memory_reserve_fraction)
    need = footprint(wl, scenario).total
    if need <= usable:
        return scenario
    full = scenario.model_copy(update={"recompute": "full"})
    print(f"recompute: full (selective needs {need / 1e9:.2f} GB per chip > {usable / 1e9:.2f} GB usable)",
          file=sys.stderr)
    return full
