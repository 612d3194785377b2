"""Error bands for any estimate from the cross-validated residuals of its group.

If cosim's prediction p relates to the truth m by p = m (1 + e), the truth given p is p / (1 + e).
Using the leave-one-out errors e of the rows in the same metric group (stored by the calibration) --
narrowed to the estimate's model class (MoE or dense) and hardware generation when those rows number at
least `MIN_GENERATION_ROWS`, so a MoE estimate on Blackwell carries the track record of MoE rows on
Blackwell, which is not that of dense ones -- P10 and P90 of the truth are p / (1 + e_q90) and
p / (1 + e_q10).
"""

from __future__ import annotations

import functools

import numpy as np

from cosim.engines.calibration import load_calibration
from cosim.validate.mapping import TRAINING_STACKS, load_mapping

#: which validation metric each estimate/serve output is judged by
OUTPUT_METRIC = {
    "throughput_tokens_per_s": "offline_throughput",
    "output_tokens_per_s": "offline_throughput",
    "seconds_per_video": "video_seconds",
    "tpot_s": "per_user_decode",
    # a serving run's MFU is its throughput x FLOPs per token / peak: it errs as the throughput does
    "mfu": "offline_throughput",
    "energy_j_per_token": "energy_per_token",
    # a single prompt's context pass (prefill at batch 1) is judged by the first-token latency rows
    "ttft_s": "first_token_latency_s",
}
#: a video run's joules are judged by ML.ENERGY's text-to-video runs (GPU joules per video), its MFU by the
#: video times (inverted: MFU is FLOPs over time)
VIDEO_OUTPUT_METRIC = {**OUTPUT_METRIC, "energy_j": "video_energy_j", "mfu": "video_seconds"}
#: outputs that are rates (per second) and the time metrics whose errors they invert
RATE_OUTPUTS = ("throughput_tokens_per_s", "output_tokens_per_s", "mfu")
TIME_METRICS = ("video_seconds",)
#: a training run's outputs are judged by the training rows (tokens/s per GPU errs as the total does)
TRAIN_OUTPUT_METRIC = {
    "throughput_tokens_per_s": "training_tokens_per_s_per_gpu",
    "mfu": "training_mfu",
}


def _metric_table(phase: str | None) -> dict[str, str]:
    """Which validation metric judges each output of a run of this phase."""
    if phase == "train":
        return TRAIN_OUTPUT_METRIC
    return VIDEO_OUTPUT_METRIC if phase == "video" else OUTPUT_METRIC


MIN_ROWS = 3
MIN_GENERATION_ROWS = 5
#: the batch of every per-user speed row (min-latency runs at concurrency 1)
PER_USER_BATCH = 1


@functools.cache
def _workload_is_moe(workload: str) -> bool:
    from cosim.engines.calibration import is_moe
    from cosim.specs.loader import load_workload

    return is_moe(load_workload(workload))


def loo_errors(metric: str, generation: str | None = None, moe: bool | None = None,
               trainer: str | None = None) -> np.ndarray:
    """Cross-validated signed errors of the rows of one metric (empty before calibration), optionally only
    those on hardware of one generation (cosim.validate.fit.GENERATIONS), only those of MoE (or dense)
    models and only those of one trainer class (`trainer_class`: a training stack's rows were predicted at
    its own factor, so they say nothing of a tuned trainer's estimate, nor the tuned rows of its)."""
    from cosim.validate.fit import generation_of

    rows = _row_queries(load_mapping())
    errs = load_calibration().get("loo_errors") or {}
    return np.array([e for rid, e in errs.items() if rid in rows and rows[rid][0] == metric
                     and (generation is None or generation_of(rows[rid][1]) == generation)
                     and (moe is None or _workload_is_moe(rows[rid][2]) == moe)
                     and (trainer is None or trainer_class(rows[rid][3]) == trainer)])


def trainer_class(stack: str) -> str:
    """The stack whose training rows judge a training estimate on `stack`: a fitted training stack
    (cosim.validate.mapping.TRAINING_STACKS) its own, any other the tuned trainers'."""
    return stack if stack in TRAINING_STACKS else "tuned"


_ROW_QUERIES: dict[int, tuple] = {}


def _row_queries(mapping) -> dict[str, tuple[str, str, str, str]]:
    """(metric, hardware slug, workload, stack) of every scored row: the reference rows, ML.ENERGY's energy rows and
    its configuration rows (their stored errors are out of sample: no fit sees them), built once per mapping."""
    hit = _ROW_QUERIES.get(id(mapping))
    if hit is None or hit[0] is not mapping:
        from cosim.validate.mapping import energy_queries
        from cosim.validate.runner import _config_query_table

        table = {rid: (q.kind, q.hardware, q.workload, q.stack) for rid, q in mapping.rows.items()}
        for queries in (energy_queries(mapping)[0], _config_query_table(mapping)):
            table.update({rid: (q.kind, q.hardware, q.workload, q.stack) for rid, q in queries.items()})
        hit = _ROW_QUERIES[id(mapping)] = (mapping, table)
    return hit[1]


def _errors(metric: str, generation: str | None, moe: bool | None = None,
            class_only: bool = False, trainer: str | None = None) -> tuple[np.ndarray, str]:
    """The narrowest group with enough rows (the model class on the generation, the model class, the
    generation, else the whole metric), with its label; `class_only`: the model-class groups or none;
    `trainer`: only the rows of that trainer class (`trainer_class`), at every level."""
    kind = None if moe is None else ("MoE" if moe else "dense")
    base = metric if trainer is None else f"{metric}, {trainer} trainers"
    candidates = []
    if moe is not None and generation is not None:
        candidates.append((generation, moe, f"{base}, {kind} models, on {generation}"))
    if moe is not None:
        candidates.append((None, moe, f"{base}, {kind} models"))
    if generation is not None and not class_only:
        candidates.append((generation, None, f"{base} on {generation}"))
    for gen, cls, label in candidates:
        e = loo_errors(metric, gen, cls, trainer)
        if len(e) >= MIN_GENERATION_ROWS:
            return e, label
    return (np.zeros(0), base) if class_only else (loo_errors(metric, trainer=trainer), base)


def band(output: str, value: float | None, hardware: str | None = None,
         moe: bool | None = None, phase: str | None = None, batch: int | None = None,
         stack: str = "tuned") -> dict[str, float | None] | None:
    """{'p10': ..., 'p90': ..., 'n': rows, 'group': ...} for an output value, or None without enough
    evidence; `hardware` (a catalog slug) and `moe` (the model's class) narrow the evidence to its
    generation and class when those have enough rows; `phase` 'train' judges by the training rows of the
    estimate's trainer class (`stack`, see `trainer_class`); a TPOT at `batch` 1 is judged by the per-user
    speed rows of its model class when they suffice."""
    from cosim.validate.fit import generation_of

    table = _metric_table(phase)
    if value is None or output not in table:
        return None
    if output == "ttft_s" and (phase != "prefill" or batch is None or batch > PER_USER_BATCH):
        return None  # the first-token rows time one prompt alone; a batch's or a server's TTFT is another question
    metric = table[output]
    generation = generation_of(hardware) if hardware else None
    if output == "tpot_s":  # per-user speed rows are 1/TPOT; fall back on throughput rows when few
        # they are few, all single-sequence runs of one kind (batch-1 DeepSeek-R1 decode, with and without MTP
        # drafts): they judge a single sequence of their own model class; anything else is a throughput question
        single = batch is not None and batch <= PER_USER_BATCH
        e, group = _errors(metric, generation, moe, class_only=True) if single else (np.zeros(0), metric)
        if len(e) < MIN_GENERATION_ROWS:
            metric = "offline_throughput"
            e, group = _errors(metric, generation, moe)
        e = 1.0 / (1.0 + e) - 1.0  # an error on a rate is the inverse error on a time
    else:
        trainer = trainer_class(stack) if phase == "train" else None
        e, group = _errors(metric, generation, moe, trainer=trainer)
        if output in RATE_OUTPUTS and metric in TIME_METRICS:
            e = 1.0 / (1.0 + e) - 1.0
    if len(e) < MIN_ROWS:
        return None
    q10, q90 = np.quantile(e, [0.1, 0.9])
    lo, hi = value / (1.0 + q90), value / (1.0 + q10)
    return {"p10": float(min(lo, hi)), "p90": float(max(lo, hi)), "n": int(len(e)), "group": group}


def bands_for(result: dict, hardware: str | None = None, moe: bool | None = None,
              phase: str | None = None, stack: str = "tuned") -> dict[str, dict | None]:
    """Bands for every output of a result dict that has a metric group (of `hardware`'s generation and the
    model's class when those have enough validated rows; a training run's by the training rows of its
    trainer class)."""
    table = _metric_table(phase)
    return {k: band(k, result.get(k), hardware, moe, phase, result.get("batch"), stack) for k in table
            if result.get(k) is not None}
