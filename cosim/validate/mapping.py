"""Row -> query mapping (`cosim/data/reference/mapping.yaml`): which cosim query predicts each row.

Every reference row is either mapped to a `Query` or listed as unmapped with a reason; a row in
neither list is an error, so no measurement is dropped silently.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosim.errors import CosimInputError
from cosim.specs.hardware import Fp4Format
from cosim.specs.loader import read_document

MAPPING_PATH = Path(__file__).resolve().parent.parent / "data" / "reference" / "mapping.yaml"

#: serving or training software the measurement ran on. `tuned`: MLPerf closed submissions, vendors' own tuned
#: engines and Megatron-Core/MaxText trainers (the reference the per-generation calibration describes);
#: `trtllm-bench`: TensorRT-LLM's PyTorch-backend benchmark tables; `trtllm-pytorch`: that backend under another
#: harness (NVIDIA's MLPerf DeepSeek-R1 submissions), which takes trtllm-bench's factor
#: (cosim.engines.calibration.KERNELS_OF) but states its own engine limits; `vllm`: vLLM (ML.ENERGY); `pytorch`:
#: eager PyTorch trainers (FSDP or DDP without Megatron-Core's fused kernels and Transformer Engine's layers:
#: llm-foundry/Composer, torchtitan, flash-attention's GPT training scripts), whose factor the dense training rows
#: of those trainers fit (TRAINING_STACKS). Each fitted stack has one kernel-efficiency factor
#: (cosim/data/calibration.yaml `stacks`).
Stack = Literal["tuned", "trtllm-bench", "trtllm-pytorch", "vllm", "pytorch"]
#: the stacks whose factor only training rows fit (cosim.validate.fit.fit_training_stack): they price training
#: steps, not serving, which no row of theirs measured
TRAINING_STACKS: tuple[str, ...] = ("pytorch",)

Kind = Literal["offline_throughput", "server_throughput", "per_user_decode", "video_seconds", "video_energy_j",
               "training_tflops_per_gpu", "training_mfu", "training_tokens_per_s_per_gpu", "energy_per_token",
               "system_energy_per_token", "static_batch_tokens_per_s_per_gpu", "first_token_latency_s",
               "ttft_s_at_concurrency", "itl_s_at_concurrency", "output_tokens_per_s_at_concurrency"]
#: kinds measured by a closed-loop client at a fixed concurrency (genai-perf/AIPerf, vLLM's benchmark_serving
#: --max-concurrency): mean time to first token, mean inter-token latency, output tokens/s over all clients
CONCURRENCY_KINDS = ("ttft_s_at_concurrency", "itl_s_at_concurrency", "output_tokens_per_s_at_concurrency")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_len: float = Field(gt=0)
    output_len: float = Field(gt=0)
    input_source: str
    output_source: str
    #: dataset profile (cosim/data/dataset_profiles.yaml) whose output-length distribution gives the
    #: spread of the outputs; None: every request generates output_len tokens
    output_dataset: str | None = None


class Query(BaseModel):
    """The cosim question whose answer is compared with one measurement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    hardware: str
    chips: int = Field(gt=0)
    workload: str
    precision: str = "bf16"
    kv_precision: str | None = Field(default=None, description="KV-cache precision where the checkpoint "
                                     "keeps it apart from the weights (None: cosim's default for `precision`)")
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    sp: int = Field(default=1, gt=0)
    zero: int = Field(default=0, ge=0, le=3)
    microbatch: int | None = Field(default=None, gt=0)
    vpp: int = Field(default=1, gt=0, description="training: model chunks per pipeline stage (interleaved 1F1B)")
    recompute: Literal["none", "selective", "full"] | None = Field(
        default=None, description="training: the activation recompute the run states (None: selective where it "
        "fits, else full, as trainers are configured)")
    input_len: int | None = Field(default=None, gt=0)
    output_len: int | None = Field(default=None, gt=0)
    profile: str | None = None
    num_requests: int | None = Field(default=None, gt=0)
    max_seqs: int | None = Field(default=None, gt=0, description="the engine's batch size where the submission "
                                 "states it (TensorRT-LLM: per pipeline micro-batch and per attention-DP rank)")
    max_num_tokens: int | None = Field(default=None, gt=0, description="the engine's token budget per step "
                                       "(decode tokens plus prompt chunks), where the submission states it")
    kv_cache_fraction: float | None = Field(default=None, gt=0, le=1, description="TensorRT-LLM's "
                                            "kvcache_free_gpu_mem_frac, where the submission states it")
    activation_precision: str | None = Field(default=None, description="the experts' activation precision where "
                                             "it differs from their weights' (W4A8, W4A16 MoE kernels)")
    attention_precision: str | None = Field(default=None, description="precision the attention cores multiply in "
                                            "where the run's engine sets it apart from the GEMMs' (TensorRT-LLM "
                                            "--gpt_attention_plugin float16 over an FP8 cache)")
    dense_precision: str | None = Field(default=None, description="precision of the GEMMs outside the routed "
                                        "experts where the checkpoint quantises only the experts")
    fp4_format: Fp4Format = Field(default="nvfp4", description="how the checkpoint's FP4 weights are "
                                  "block-scaled: NVIDIA's NVFP4 or OCP MXFP4 (AMD's FP4, gpt-oss)")
    ssm_state_precision: str | None = Field(default=None, description="hybrid models: the Mamba-2 state cache's "
                                            "precision where the run sets it (vLLM mamba-ssm-cache-dtype)")
    images_per_request: int = Field(default=0, ge=0, description="images each prompt carries (a multimodal "
                                    "model's image encoder runs once per image; input_len counts their tokens)")
    draft_tokens: int = Field(default=0, ge=0, description="per_user_decode: tokens the model's MTP module drafts "
                              "per step (speculative decoding)")
    accepted_tokens_per_step: float | None = Field(default=None, ge=1.0, description="with draft_tokens: the mean "
                                                   "tokens a sequence emits per step, as the source states it")
    kv_read_per_query_head: bool = Field(default=False, description="decode attention reads the KV cache once "
                                         "per query head (no GQA kernel), where the source says the run's "
                                         "stack did not enable one")
    kv_read_per_query_head_layers: Literal["all", "windowed"] = Field(
        default="all", description="with kv_read_per_query_head: every layer, or the windowed ones only (the "
                                   "layers the run's GQA kernel does not support)")
    dp_balance: bool = Field(default=False, description="the attention-DP ranks synchronise their prompts "
                             "(TensorRT-LLM attention_dp_config enable_balance), where the run's config sets it")
    batch: int | None = Field(default=None, gt=0)
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    steps: int | None = None
    note: str | None = None
    assumed: str | None = None
    attention_kernel: str | None = Field(default=None, description="a named attention kernel the run's stack "
                                         "pins (cosim/data/attention_kernels.yaml), where the source says which")
    sp_kind: Literal["ulysses", "ring"] = Field(default="ulysses", description="how sequence parallelism splits "
                                                 "attention: heads (Ulysses all-to-all) or queries (ring KV passing)")
    sp_ring: int | None = Field(default=None, gt=0, description="ring degree of a Ulysses x ring hybrid (xDiT's "
                                "USP: sp = ulysses x ring), with sp_kind ulysses")
    stack: Stack = "tuned"
    slo_ttft_s: float | None = Field(default=None, gt=0)
    slo_tpot_s: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, gt=0, description="the *_at_concurrency kinds: clients of the "
                                    "closed loop, each sending its next request when its last one completes")


class EnergyTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_len: int | None = Field(default=None, gt=0)
    input_over_output: float | None = Field(default=None, gt=0)
    images_per_request: int = Field(default=0, ge=0, description="images each prompt carries; the text length "
                                    "above excludes their tokens")
    source: str


class CheckpointPrecision(BaseModel):
    """How a checkpoint's weights are stored and run (MXFP4 experts beside BF16 attention, say)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: str
    #: the precision activations enter the GEMMs in (W4A16: bf16); None: the weights' precision
    activation_precision: str | None = None
    #: the precision of everything outside the routed experts; None: `precision`
    dense_precision: str | None = None
    #: the FP4 weights' block scaling (gpt-oss's released experts: MXFP4)
    fp4_format: Fp4Format = "nvfp4"
    #: the KV cache's precision; None: the server rule (`ServerSettings.fp8_kv_precision`)
    kv_precision: str | None = None
    #: a hybrid model's Mamba-2 state cache (vLLM --mamba-ssm-cache-dtype); None: the activations' ('auto')
    ssm_state_precision: str | None = None
    source: str


class ServerSettings(BaseModel):
    """How the ML.ENERGY runs' vLLM server was configured, where it changes the query (with the source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: KV-cache precision of FP8 checkpoints (vLLM's kv_cache_dtype "auto" keeps the model dtype)
    fp8_kv_precision: str
    #: MoE layers run expert-parallel over the row's GPUs (attention stays tensor-parallel)
    moe_expert_parallel: bool
    source: str


class EnergyMapping(BaseModel):
    """Rules that turn ML.ENERGY rows into queries, and MLPerf Power rows into their submission's query."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, str]
    gpus: dict[str, str]
    precisions: dict[str, CheckpointPrecision] = Field(default_factory=dict)
    server: ServerSettings | None = None
    tasks: dict[str, EnergyTask]
    unmapped_tasks: dict[str, str]
    mlperf_power: dict[str, str]
    mlperf_power_unmapped: dict[str, str]
    #: ML.ENERGY diffusion models (mlenergy_configs.yaml) by HF id -> cosim video workload slug
    diffusion_models: dict[str, str] = Field(default_factory=dict)
    #: why the other diffusion models' configurations are not predicted
    diffusion_unmapped: dict[str, str] = Field(default_factory=dict)
    diffusion_source: str | None = None
    #: the attention kernel the diffusion stack calls (cosim/data/attention_kernels.yaml)
    diffusion_attention_kernel: str | None = None


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    profiles: dict[str, Profile]
    rows: dict[str, Query]
    unmapped: dict[str, str]
    energy: EnergyMapping


@functools.lru_cache(maxsize=2)
def load_mapping(path: str | None = None) -> Mapping:
    """The validated mapping; unknown profiles are errors naming the row."""
    p = Path(path) if path else MAPPING_PATH
    data = read_document(p)
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(x) for x in first["loc"]]
        row = loc[1] if len(loc) > 1 and loc[0] == "rows" else None
        msg = f"row '{row}': {first['msg']}" if row else first["msg"]
        raise CosimInputError(msg, file=str(p), field=".".join(loc[2:] if row else loc)) from None
    from cosim.serving.requests import load_profiles

    datasets = load_profiles()["profiles"]
    for name, prof in mapping.profiles.items():
        if prof.output_dataset is not None and prof.output_dataset not in datasets:
            raise CosimInputError(f"profile '{name}': unknown output_dataset '{prof.output_dataset}'; known: "
                                  f"{', '.join(sorted(datasets))}", file=str(p), field="output_dataset")
    for row_id, q in mapping.rows.items():
        if q.profile and q.profile not in mapping.profiles:
            raise CosimInputError(f"row '{row_id}': unknown profile '{q.profile}'", file=str(p), field="profile")
        if q.kind == "offline_throughput" and not q.profile and not (q.input_len and q.output_len):
            raise CosimInputError(f"row '{row_id}': needs input_len and output_len or a profile", file=str(p),
                                  field="input_len")
    return mapping


def lengths(query: Query, mapping: Mapping) -> tuple[int, int]:
    """Mean input and output tokens of a query (from its profile when it names one)."""
    if query.profile:
        prof = mapping.profiles[query.profile]
        return round(prof.input_len), round(prof.output_len)
    return int(query.input_len or 1), int(query.output_len or 1)


def output_dataset(query: Query, mapping: Mapping) -> str | None:
    """The dataset profile whose output lengths a query's requests follow, or None (fixed lengths)."""
    prof = mapping.profiles.get(query.profile) if query.profile else None
    return prof.output_dataset if prof is not None else None


def output_cv(query: Query, mapping: Mapping) -> float:
    """Coefficient of variation of a query's output lengths (0 unless its profile names a dataset)."""
    from cosim.serving.requests import profile_length

    dataset = output_dataset(query, mapping)
    return 0.0 if dataset is None else profile_length(dataset, "output").cv


def energy_queries(mapping: Mapping | None = None) -> tuple[dict[str, Query], dict[str, str]]:
    """(queries, unmapped reasons) for every energy row: ML.ENERGY by rule, MLPerf Power by submission."""
    from cosim.validate.reference import diffusion_summary_rows, load_energy_rows

    mapping = mapping or load_mapping()
    rules = mapping.energy
    queries: dict[str, Query] = {}
    unmapped: dict[str, str] = {}
    for row in load_energy_rows():
        if row.source_class == "mlperf_power":
            if row.id in rules.mlperf_power:
                base = mapping.rows[rules.mlperf_power[row.id]]
                queries[row.id] = base.model_copy(update={"kind": "system_energy_per_token"})
            else:
                unmapped[row.id] = rules.mlperf_power_unmapped.get(row.id, "no query for this MLPerf Power row")
            continue
        q = ml_energy_query(rules, row.model, row.task, row.gpu, row.num_gpus, row.batch, row.avg_output_len)
        if isinstance(q, str):
            unmapped[row.id] = q
        else:
            queries[row.id] = q
    for row_id, model in diffusion_summary_rows().items():
        unmapped[row_id] = (
            "diffusion run's summary (minimum-energy configuration): scored as its configuration in "
            "mlenergy_configs.yaml (mlenergy-cfg-* rows)" if model in rules.diffusion_models
            else rules.diffusion_unmapped.get(model, f"{model} is not in the workload catalog"))
    return queries, unmapped


def ml_energy_query(rules: EnergyMapping, model_id: str, task_name: str, gpu: str, num_gpus: int,
                    batch: int | None, avg_output_len: float | None) -> Query | str:
    """The query of one ML.ENERGY vLLM run by the mapping's rules, or the reason it has none: tensor parallel
    over the run's GPUs (experts parallel for MoE models), at max_num_seqs, the checkpoint's precision."""
    from cosim.engines.calibration import is_moe
    from cosim.specs.loader import load_workload
    from cosim.workloads.params import image_tokens

    if task_name in rules.unmapped_tasks:
        return rules.unmapped_tasks[task_name]
    slug = rules.models.get(model_id)
    task = rules.tasks.get(task_name)
    if slug is None:
        images = task is not None and task.images_per_request
        return (f"multimodal prompts: {model_id} is not in the workload catalog (cosim models fixed-resolution "
                "image encoders only, Gemma 3's)" if images else f"{model_id} is not in the workload catalog")
    if task is None or gpu not in rules.gpus or not batch or not avg_output_len:
        return f"task '{task_name}' or GPU '{gpu}' has no mapping rule"
    out = int(round(avg_output_len))
    inp = task.input_len or int(round((task.input_over_output or 1.0) * out))
    if task.images_per_request:
        model = load_workload(slug)
        if model.vision is None:
            return (f"multimodal prompts: {slug} has no image encoder in cosim (only fixed-resolution encoders "
                    "are modelled; tiled and dynamic-resolution ones are not)")
        inp += image_tokens(model, task.images_per_request)
    precision = "fp8" if model_id.upper().endswith("FP8") else "bf16"
    checkpoint = rules.precisions.get(model_id)
    if checkpoint is not None:
        precision = checkpoint.precision
    kv, ep = None, 1
    if rules.server is not None:
        kv = rules.server.fp8_kv_precision if precision == "fp8" else None
        if rules.server.moe_expert_parallel and is_moe(load_workload(slug)):
            ep = num_gpus
    if checkpoint is not None and checkpoint.kv_precision:
        kv = checkpoint.kv_precision
    return Query(
        kind="energy_per_token", hardware=rules.gpus[gpu], chips=num_gpus, workload=slug,
        precision=precision, kv_precision=kv, tp=num_gpus, ep=ep,
        activation_precision=checkpoint.activation_precision if checkpoint else None,
        dense_precision=checkpoint.dense_precision if checkpoint else None,
        fp4_format=checkpoint.fp4_format if checkpoint else "nvfp4",
        ssm_state_precision=checkpoint.ssm_state_precision if checkpoint else None,
        input_len=inp, output_len=out, batch=batch, assumed=task.source, stack="vllm",
        images_per_request=task.images_per_request,
    )


def config_queries(mapping: Mapping | None = None) -> tuple[dict[str, Query], dict[str, str]]:
    """(queries, unmapped reasons) for the ML.ENERGY configuration rows (mlenergy_configs.yaml).

    A vLLM configuration is predicted as the energy rows are (`ml_energy_query`: tensor parallel over the GPUs,
    at max_num_seqs), except where energy_measurements.yaml already scores the same run. The files'
    `parallelization` fields are not used: they contradict the GPU counts (tensor_parallel 1 on 8 GPUs).

    A diffusion configuration gives two rows: `<id>-time` (seconds per video: the batch's time over its
    videos) and `<id>-energy` (GPU joules per video). xDiT's Ulysses x ring degrees map to cosim's sequence
    parallelism over their product: Ulysses (heads split) when the ring degree is 1, else ring (queries
    split, KV passed round), which also covers the mixed layouts' attention shapes.
    """
    from cosim.validate.reference import load_config_rows, load_energy_rows

    mapping = mapping or load_mapping()
    rules = mapping.energy
    queries: dict[str, Query] = {}
    unmapped: dict[str, str] = {}
    scored = {(r.model, r.task, r.gpu, r.num_gpus, r.batch): r.id for r in load_energy_rows()
              if r.source_class == "ml_energy"}
    for row in load_config_rows():
        if row.kind == "llm":
            v = row.values
            same = scored.get((row.model, row.task, row.gpu, row.num_gpus, v["max_num_seqs"]))
            if same is not None:
                unmapped[row.id] = f"the same run as {same}, scored there"
                continue
            q = ml_energy_query(rules, row.model, row.task, row.gpu, row.num_gpus, int(v["max_num_seqs"]),
                                v["avg_output_len"])
            if isinstance(q, str):
                unmapped[row.id] = q
            else:
                queries[row.id] = q
            continue
        ids = (f"{row.id}-time", f"{row.id}-energy")
        slug = rules.diffusion_models.get(row.model)
        reason = None
        if slug is None:
            reason = rules.diffusion_unmapped.get(row.model, f"{row.model} is not in the workload catalog")
        elif row.gpu not in rules.gpus:
            reason = f"GPU '{row.gpu}' has no mapping rule"
        if reason is not None:
            unmapped.update(dict.fromkeys(ids, reason))
            continue
        v = row.values
        sp = int(v["ulysses"]) * int(v["ring"])
        if sp != row.num_gpus:
            unmapped.update(dict.fromkeys(ids, f"{row.num_gpus} GPUs but Ulysses x ring = {sp}: the other "
                                               "GPUs' role is not stated"))
            continue
        base = Query(kind="video_seconds", hardware=rules.gpus[row.gpu], chips=row.num_gpus, workload=slug,
                     precision="bf16", sp=sp, sp_kind="ulysses" if int(v["ulysses"]) > 1 or sp == 1 else "ring",
                     sp_ring=int(v["ring"]) if int(v["ulysses"]) > 1 and int(v["ring"]) > 1 else None,
                     batch=int(v["batch"]), frames=int(v["frames"]), height=int(v["height"]),
                     width=int(v["width"]), steps=int(v["steps"]), stack="tuned",
                     attention_kernel=rules.diffusion_attention_kernel, note=rules.diffusion_source)
        queries[ids[0]] = base
        queries[ids[1]] = base.model_copy(update={"kind": "video_energy_j"})
    return queries, unmapped
